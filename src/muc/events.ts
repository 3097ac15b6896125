// The events a room raises, each declared once with its kind, and the per-service registry features
// hook them on. A feature is a file that hooks these events; the room core imports no feature, and
// features never import each other (they meet here).
//
// Five kinds (the kind is in the handler's type, so a handler cannot be of the wrong kind):
// - check:  synchronous, by priority; throw StanzaError to refuse. Returns `undefined`, not `void`,
//           so an `async` handler (which returns a Promise) does not compile: a refusal is never lost.
// - decide: synchronous; the first handler that returns something other than undefined wins.
// - build:  synchronous; mutate the element, form or list you are given.
// - after:  in the room's order, after the state changed; may emit into the outbox and hold a slot
//           (room.slot()) for I/O. A throw is logged and never touches the stanza being handled.
// - handle: one handler per key (room IQs by type and namespace); answer through ctx.reply/ctx.fail.
import type { Element } from '../../protocol/xml.js';
import type { Jid } from '../../protocol/jid.js';
import { StanzaError } from '../../protocol/errors.js';
import type { DataForm, FormField } from '../../protocol/forms.js';
import type { Affiliation, Role, JoinRequest, HistoryRequest } from '../../protocol/muc.js';
import type { RoomRecord, ArchiveEntry, ArchivedMessage, ComplianceEvent } from '../../storage/types.js';
import type { Server } from '../context.js';
import type { Logger } from '../log.js';
import type { ArchiveWriter } from '../archive-writer.js';
import type { Room } from './room.js';
import type { Occupant } from './occupants.js';
import type { RoomOption } from './option.js';

export type Check<E> = (ev: E) => undefined;
export type Decide<E, R> = (ev: E) => R | undefined;
export type Build<E> = (ev: E) => undefined;
export type After<E> = (ev: E) => undefined;

/** What a room IQ handler gets; exactly one of reply or fail answers the IQ. */
export interface RoomIq {
  room: Room;
  stanza: Element;
  payload: Element;
  from: Jid;
  /** The sender's occupant, when it is in the room. */
  occupant: Occupant | undefined;
  reply(payload?: Element): undefined;
  fail(e: unknown): undefined;
}
export type IqHandle = (iq: RoomIq) => undefined;

/** A message from an occupant on its way through the room: the sender's stanza and the room's copy (out). */
export interface MessageEvent {
  room: Room;
  occupant: Occupant;
  stanza: Element;
  subject: Element | undefined;
  body: Element | undefined;
  /** The copy the room sends (without 'to'): the sender's children, less forged room elements; message/build adds to it. */
  out: Element;
}
/** A groupchat message as archived and delivered (xml: out serialised, without 'to'). */
export interface CommittedMessage extends MessageEvent {
  xml: string;
  stamp: Date;
  subjectChange: boolean;
  /** The room's id for the message (XEP-0359); carried by out only when the message is archived. */
  stanzaId: string;
  /** The archive row (its stanza is filled after message/persist); null: not archived. */
  entry: ArchiveEntry | null;
  /** Records that commit with the message, in the same statement as its archive row. */
  compliance: ComplianceEvent[];
}

export interface RoomEvents {
  /** Someone asks to create a room by joining it; throw to refuse. */
  'room/pre-create': Check<{ service: string; name: string; creator: Jid }>;
  /** The first occupant created the room (request: its MUC extension, null for a groupchat 1.0 join). */
  'room/created': After<{ room: Room; creator: string; request: JoinRequest | null }>;
  /** A stored room is being restored: read your keys from record.config. */
  'room/loaded': Build<{ room: Room; record: RoomRecord }>;
  /** The room is being stored: write your keys into record.config (and record.persistent). */
  'room/saving': Build<{ room: Room; record: RoomRecord }>;
  /** Should an emptied room stay (true) or go (false/undefined: temporary)? */
  'room/persistent': Decide<{ room: Room }, boolean>;
  /** The room was destroyed (§10.9). */
  'room/destroyed': After<{ room: Room }>;
  /** A user asks to enter (existing: the user's occupant when another session joins it); throw to refuse. */
  'occupant/pre-join': Check<{ room: Room; jid: Jid; bare: string; nick: string; affiliation: Affiliation; request: JoinRequest | null; existing: Occupant | undefined }>;
  /** A user's affiliation beyond the stored list (e.g. server admins are owners). */
  'occupant/affiliation': Decide<{ room: Room; bare: string }, Affiliation>;
  /** The role an occupant (bare, when known) with this affiliation gets; 'none' for a present occupant means it must leave. */
  'occupant/default-role': Decide<{ room: Room; affiliation: Affiliation; bare?: string }, Role>;
  /** May viewer (undefined: any occupant) see occupants' real JIDs? Moderators always may. */
  'occupant/sees-jids': Decide<{ room: Room; viewer: Occupant | undefined }, boolean>;
  /** A user passed the join checks (existing: its occupant, when another session joins it): add records; the join happens once they commit, and is refused if they fail. */
  'occupant/persist': Build<{ room: Room; jid: Jid; bare: string; nick: string; existing: Occupant | undefined; compliance: ComplianceEvent[] }>;
  /** An occupant joined (or re-sent its join: rejoin); after its self-presence: history, subject. */
  'occupant/joined': After<{ room: Room; occupant: Occupant; full: string; history: HistoryRequest | undefined; rejoin: boolean }>;
  /** Presences a joiner gets before its own (after the present occupants'): add [to, xml] pairs. */
  'occupant/roster': Build<{ room: Room; occupant: Occupant; full: string; out: [string, string][] }>;
  /** An occupant asks for another nick; throw to refuse. */
  'occupant/pre-change': Check<{ room: Room; occupant: Occupant; nick: string }>;
  /** The last session of an occupant left (or the room was destroyed with it inside). */
  'occupant/left': After<{ room: Room; occupant: Occupant; full: string }>;
  /** An occupant's presence as the room sends it, before the muc#user x: add children. */
  'presence/build': Build<{ room: Room; occupant: Occupant; presence: Element; unavailable: boolean }>;
  /** Is the presence of occupants with this role broadcast? */
  'presence/broadcast': Decide<{ room: Room; role: Role }, boolean>;
  /** A groupchat message from an occupant with a role allowed to speak, before it is accepted; throw to refuse. */
  'message/pre-groupchat': Check<MessageEvent>;
  /** The room's copy of a groupchat or private message (forged room elements already removed): add to out. */
  'message/build': Build<MessageEvent>;
  /** A groupchat message with neither body nor subject (a reaction, a retraction…): return true to archive it as a message with a body is. */
  'message/keep': Decide<MessageEvent, true>;
  /** A groupchat message with a body or subject (or one message/keep kept) is accepted: set entry to null to keep it out of the archive (no stanza-id, no join history), add records; delivered once what is there commits. */
  'message/persist': Build<CommittedMessage>;
  /** An archived groupchat message was committed and is being delivered (xml without 'to'). */
  'message/committed': After<CommittedMessage>;
  /** A message was retracted from the archive (stanza-id); dependent: it went because the message it points at did. */
  'message/retracted': After<{ room: Room; id: string; dependent?: boolean }>;
  /** An administrator rewrote the room's archive (cleared old content, removed or replaced messages): re-read what you keep of it. */
  'archive/rewritten': After<{ room: Room }>;
  /** A private message between occupants; throw to refuse. */
  'message/private': Check<{ room: Room; from: Occupant; to: Occupant; stanza: Element }>;
  /** A non-groupchat message to the room JID (invitations, voice requests): return true when taken. */
  'message/normal': Decide<{ room: Room; stanza: Element; from: Jid; occupant: Occupant | undefined }, true>;
  /** An occupant invites someone (§7.8.2); throw to refuse. anyoneMayInvite: the room lets any occupant invite. */
  'invite/pre': Check<{ room: Room; inviter: Occupant; anyoneMayInvite: boolean }>;
  /** An invitation is being sent to invitee (bare JID), before the message goes out. */
  'invite/sending': After<{ room: Room; inviter: Occupant; invitee: string }>;
  /** The mediated invitation's extras: set password when the room has one. */
  'invite/build': Build<{ room: Room; invite: { password?: string } }>;
  /** Join history is about to be sent (count messages): add records; the history goes out once they commit, and not at all if they fail. */
  'history/sending': Build<{ room: Room; occupant: Occupant; full: string; count: number; compliance: ComplianceEvent[] }>;
  /** A MAM query on the room's archive ran (page: its page size; results: messages about to be sent): add records; the results go out once they commit. */
  'archive/reading': Build<{ room: Room; bare: string; occupant: Occupant | undefined; payload: Element; page: number; results: number; compliance: ComplianceEvent[] }>;
  /** A MAM query to the service JID (search across rooms) ran: add records; the results go out once they commit. */
  'service/search': Build<{ service: string; from: Jid; payload: Element; page: number; results: number; compliance: ComplianceEvent[] }>;
  /** Someone asks to read the room's archive; throw to refuse. */
  'archive/pre-read': Check<{ room: Room; bare: string; affiliation: Affiliation; occupant: Occupant | undefined }>;
  /** A user asks to register a nick (§7.10); throw to refuse. */
  'register/pre': Check<{ room: Room; bare: string; affiliation: Affiliation }>;
  /** The owner configuration form (§10.2) after the declared options: add fields (from: the requester's bare JID; absent when the core only asks which fields exist). */
  'config/form': Build<{ room: Room; form: DataForm; from?: string }>;
  /** A submitted configuration, after each option read its field into next; throw to refuse it. */
  'config/submitted': Check<{ room: Room; form: DataForm; next: Record<string, unknown> }>;
  /** Status codes for the configuration-change notice (§10.2.1): push codes. */
  'config/status': Build<{ room: Room; before: Record<string, unknown>; codes: number[] }>;
  /** The new configuration is in place and occupants were told. */
  'config/changed': After<{ room: Room; before: Record<string, unknown> }>;
  /** Someone asks the room's disco#info or disco#items (node: the queried node); throw to refuse. */
  'disco/pre-query': Check<{ room: Room; from: Jid; node: string | undefined }>;
  /** The room's disco#info answer: set the identity's name, add features and muc#roominfo fields. */
  'disco/info': Build<{ room: Room; identity: { name: string }; features: string[]; fields: FormField[] }>;
  /** disco#info on a node of the room (e.g. x-roomuser-item, §7.12): return the query to answer with. */
  'disco/node-info': Decide<{ room: Room; node: string; from: Jid }, Element>;
  /** The room's disco#items answer for a node: add items, and set known when the node is yours (the answer names it). */
  'disco/items': Build<{ room: Room; node: string | undefined; from: Jid; items: { jid: string; node?: string; name?: string }[]; known: boolean }>;
  /** How many join-history messages a joiner gets (requested: its maxstanzas); undefined: the room's own setting. */
  'history/count': Decide<{ room: Room; requested: number | undefined }, number>;
  /** The service's own disco#info (not a room's): add features and XEP-0128 forms. */
  'service/disco-info': Build<{ from: Jid; features: string[]; forms: DataForm[] }>;
  /** Who lists the service's rooms for this requester (disco#items on the service); undefined: the public rooms. */
  'service/room-list': Decide<{ from: Jid }, RoomLister>;
  /** An IQ to an occupant JID; return true when answered (else it is relayed to the occupant). */
  'iq/occupant': Decide<{ room: Room; stanza: Element; payload: Element | undefined; from: Jid; sender: Occupant; target: Occupant }, true>;
}

/** One page of a room listing (after: a room localpart) and the size of the whole list. */
export interface RoomLister {
  page(after: string | undefined, max: number): Promise<{ name: string; title: string }[]>;
  count(): Promise<number>;
}

/**
 * A stanza for a room, before the room (or its creation) sees it. An admission step answers undefined
 * when it has nothing to do, or a promise: the stanza, and every later stanza for the same room, waits
 * for it; 'handled' means the step answered the stanza and the room never sees it.
 */
export interface Admission {
  /** The room's localpart. */
  name: string;
  /** The room, when this node holds it. */
  room: Room | undefined;
  stanza: Element;
  from: Jid;
  /** Answers an IQ with a result from the room JID. */
  result(payload?: Element): 'handled';
  /** Answers with an error from the room JID (StanzaError; anything else is internal-server-error). */
  fail(e: unknown): 'handled';
}
export type Admit = (a: Admission) => Promise<'handled' | undefined> | undefined;

type Payload<K extends keyof RoomEvents> = Parameters<RoomEvents[K]>[0];
type Answer<K extends keyof RoomEvents> = Exclude<ReturnType<RoomEvents[K]>, undefined>;

/** What a feature sees of the service it is installed on. */
export interface FeatureContext {
  readonly server: Server;
  readonly domain: string;
  readonly log: Logger;
  readonly writer: ArchiveWriter;
  readonly limits: { messagesPerSecond: number; messageBurst: number; maxNickLength: number };
  /** A room this node holds, if loaded. */
  loadedRoom(name: string): Room | undefined;
  /** Every room this node holds. */
  loadedRooms(): IterableIterator<Room>;
  /** Runs task in the room's order: after the stanzas admitted before it, before those that come later. */
  inRoomOrder(name: string, task: () => Promise<void> | void): void;
}

/** A room feature: one file, hooking room events when a service starts. */
export interface RoomFeature {
  readonly name: string;
  init(hooks: RoomHooks, ctx: FeatureContext): void;
}

interface Entry { handler: (ev: never) => unknown; priority: number }

/**
 * One registry per MUC service, filled once when the service starts; firing is a plain loop over a
 * prepared array, with no allocation and no promise.
 */
export class RoomHooks {
  private readonly chains = new Map<keyof RoomEvents, Entry[]>();
  private readonly iqs = new Map<string, IqHandle>();
  private readonly declared: RoomOption[] = [];
  private readonly byField = new Map<string, RoomOption>();
  private readonly preparers: { fn: (room: Room, newest: readonly ArchivedMessage[]) => Promise<void> | void; newest: number }[] = [];
  private readonly admitters: Admit[] = [];
  private readonly prefetchers: ((stanza: Element, from: Jid) => void)[] = [];
  private static readonly none: Entry[] = [];

  constructor(private readonly log: Logger) {}

  on<K extends keyof RoomEvents>(name: K, handler: RoomEvents[K], priority = 0): void {
    const chain = this.chains.get(name) ?? [];
    chain.push({ handler: handler as (ev: never) => unknown, priority });
    chain.sort((a, b) => b.priority - a.priority);
    this.chains.set(name, chain);
  }

  /** Registers the one handler for IQs of this type and namespace to the room JID. */
  iq(type: 'get' | 'set', ns: string, handler: IqHandle): void {
    const key = `${type} ${ns}`;
    if (this.iqs.has(key)) throw new Error(`room IQ ${key} is handled twice`);
    this.iqs.set(key, handler);
  }

  iqHandler(type: string, ns: string): IqHandle | undefined {
    return this.iqs.get(`${type} ${ns}`);
  }

  /** Declares a room option: its form field, default and parser (see option.ts). Form order is by `order`. */
  option(option: RoomOption): void {
    if (this.byField.has(option.field)) throw new Error(`room option ${option.field} is declared twice`);
    this.declared.push(option);
    this.declared.sort((a, b) => a.order - b.order);
    this.byField.set(option.field, option);
  }

  get options(): readonly RoomOption[] {
    return this.declared;
  }

  optionFor(field: string): RoomOption | undefined {
    return this.byField.get(field);
  }

  /** Default values of every declared option. */
  defaults(): Record<string, unknown> {
    const c: Record<string, unknown> = {};
    for (const o of this.declared) if (!(o.key in c)) c[o.key] = o.initial();
    return c;
  }

  /**
   * Async work done at the room's door, once, when the service loads a stored room and before the
   * room handles any stanza (e.g. filling the history cache). Events themselves stay synchronous.
   * newest: how many of the archive's newest messages fn wants (oldest first); the service reads
   * them once for every feature, with the room's record, not once per feature after it.
   */
  prepare(fn: (room: Room, newest: readonly ArchivedMessage[]) => Promise<void> | void, opts: { newest?: number } = {}): void {
    this.preparers.push({ fn, newest: opts.newest ?? 0 });
  }

  /** The most newest archived messages any preparer wants. */
  newestWanted(): number {
    let n = 0;
    for (const p of this.preparers) n = Math.max(n, p.newest);
    return n;
  }

  /** newest: the archive's newest messages, oldest first, at least newestWanted() of them when there are. */
  async prepared(room: Room, newest: readonly ArchivedMessage[]): Promise<void> {
    for (const { fn, newest: n } of this.preparers) {
      await fn(room, n === 0 ? [] : n >= newest.length ? newest : newest.slice(newest.length - n));
    }
  }

  /**
   * Registers a prefetch: called when a stanza reaches the service, before it waits for its room's
   * order, to start async work (a read) that its admission step will then find done or under way.
   * Concurrent joiners of one room so wait for their reads together, not one after another.
   */
  prefetch(fn: (stanza: Element, from: Jid) => void): void {
    this.prefetchers.push(fn);
  }

  prefetching(stanza: Element, from: Jid): void {
    for (let i = 0; i < this.prefetchers.length; i++) this.prefetchers[i]!(stanza, from);
  }

  /** Registers an admission step (see Admission): async work before a room handles a stanza, in the room's order. */
  admit(fn: Admit): void {
    this.admitters.push(fn);
  }

  /** Runs the admission steps in order; undefined when none had anything to do (the common case: no promise). */
  admission(a: Admission): Promise<'handled' | undefined> | undefined {
    for (let i = 0; i < this.admitters.length; i++) {
      const r = this.admitters[i]!(a);
      if (r !== undefined) return this.admitRest(a, i + 1, r);
    }
    return undefined;
  }

  private async admitRest(a: Admission, from: number, first: Promise<'handled' | undefined>): Promise<'handled' | undefined> {
    if ((await first) === 'handled') return 'handled';
    for (let i = from; i < this.admitters.length; i++) {
      const r = this.admitters[i]!(a);
      if (r !== undefined && (await r) === 'handled') return 'handled';
    }
    return undefined;
  }

  has(name: keyof RoomEvents): boolean {
    return this.chains.has(name);
  }

  private chain(name: keyof RoomEvents): Entry[] {
    return this.chains.get(name) ?? RoomHooks.none;
  }

  /** Runs every check; the first throw refuses. */
  check<K extends keyof RoomEvents>(name: K, ev: Payload<K>): void {
    const chain = this.chain(name);
    for (let i = 0; i < chain.length; i++) {
      const r = (chain[i]!.handler as (e: Payload<K>) => unknown)(ev);
      // Only a handler forced past the types can return here: an async check would lose its refusal.
      if (r !== undefined) refuseLate(this.log, name, r);
    }
  }

  /** The first answer that is not undefined. */
  decide<K extends keyof RoomEvents>(name: K, ev: Payload<K>): Answer<K> | undefined {
    const chain = this.chain(name);
    for (let i = 0; i < chain.length; i++) {
      const r = (chain[i]!.handler as (e: Payload<K>) => unknown)(ev);
      if (r instanceof Promise) refuseLate(this.log, name, r);
      if (r !== undefined) return r as Answer<K>;
    }
    return undefined;
  }

  /** Lets every handler add to ev. */
  build<K extends keyof RoomEvents>(name: K, ev: Payload<K>): void {
    this.check(name, ev);
  }

  /** Runs every handler; a throw is logged and the others still run. */
  after<K extends keyof RoomEvents>(name: K, ev: Payload<K>): void {
    const chain = this.chain(name);
    for (let i = 0; i < chain.length; i++) {
      try {
        const r = (chain[i]!.handler as (e: Payload<K>) => unknown)(ev);
        if (r instanceof Promise) r.catch((err: unknown) => this.log.error('muc: room event handler failed', { err, event: name }));
      } catch (err) {
        this.log.error('muc: room event handler failed', { err, event: name });
      }
    }
  }
}

/**
 * A check that answered with something (a promise, if its author cast past the types): refuse the
 * request rather than let it through, and keep the promise from becoming an unhandled rejection.
 */
function refuseLate(log: Logger, name: string, r: unknown): never {
  if (r instanceof Promise) r.catch(() => {});
  log.error('muc: a room check returned a value; checks must be synchronous', { event: name });
  throw new StanzaError('internal-server-error', 'a room policy is broken');
}
