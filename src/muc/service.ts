// A MUC service (conference.<domain>): finds the room a stanza is for and hands it over. In a cluster
// each room lives on one node at a time, the holder of the room's lease in the session store; other
// nodes forward the room's stanzas there, so one node orders, archives and fans out every message.
import { randomUUID } from 'node:crypto';
import { Element } from '../../protocol/xml.js';
import { parseStanzaString } from '../../protocol/xml-stream.js';
import { Jid, tryParseJid } from '../../protocol/jid.js';
import { StanzaError, errorReply } from '../../protocol/errors.js';
import type { Server } from '../context.js';
import type { ArchiveWriter } from '../archive-writer.js';
import { Room, type RoomHost } from './room.js';
import { RoomHooks, type Admission, type FeatureContext, type RoomFeature, type RoomLister } from './events.js';
import { coreParts } from './core-parts.js';
import { hold, continueWith, type Done } from '../streams/completion.js';
import { RECENT_ON_LOAD } from './recent.js';

import { ServiceAddress, type ServiceIqHandler } from './service-address.js';

export type { ServiceIqHandler };

export interface MucServiceOptions {
  domain: string;
  name: string;
  /** Who may create rooms: anyone, accounts of this server (and its subdomains), or server admins. */
  roomCreation: 'anyone' | 'local' | 'admins';
  messagesPerSecond: number;
  messageBurst: number;
  maxNickLength: number;
  /** An empty persistent room stays loaded this long before it is unloaded. */
  idleUnloadSeconds: number;
}

/**
 * How long a node holds a room without renewing; renewed every RENEW_MS. A node that could not renew
 * for LEASE_MS - LEASE_MARGIN_MS (counted from when it sent the last successful renewal, so before
 * Redis started the lease's clock) stops acting as the owner: its lease may lapse and another node
 * take the room, and there are never two owners.
 */
const LEASE_MS = 4_000;
const RENEW_MS = 1_000;
const LEASE_MARGIN_MS = 750;
/** A forwarded stanza the owner has not confirmed this long is sent again (to the owner found anew). */
const RESEND_AFTER_MS = 750;
/**
 * To the same owner, still holding the lease, a stanza is sent again only this often: it is alive and
 * will confirm, or die and lose the lease (a copy lost on the way, as when Redis restarts, is still sent
 * again). A new owner gets it at once.
 */
const RESEND_SAME_OWNER_MS = 3_000;
/** How often unconfirmed forwarded stanzas are looked at. */
const RESEND_TICK_MS = 250;
/** A forwarded stanza no owner confirmed in this long is refused to its sender. */
const GIVE_UP_MS = 15_000;
/**
 * Lease renewals unanswered this long (a link to Redis that went silent): the node fences itself, as
 * when Redis is known down, until a renewal is answered again.
 */
const RENEW_STALL_MS = 1_000;
/** How long a remembered owner of a room on another node is trusted before asking again. */
const REMOTE_TTL_MS = 5_000;
const MAX_HOPS = 3;
const CLUSTER_TOPIC = 'muc';

/**
 * Over the cluster channel: a stanza for a room held by the receiving node (id: what the owner confirms,
 * and the stanza id it gives the message; origin: the node to confirm to), or the confirmation of one;
 * or (take) a room a draining node (from) asks this node to load now, answered with taken once the
 * room is loaded here or its holder is known.
 */
interface ForwardedStanza {
  service: string; xml?: string; hops?: number; id?: string; origin?: string; confirm?: string;
  /** When the origin first forwarded the stanza (ms): the message's stamp, the same at every resend. */
  at?: number;
  take?: string; taken?: string; from?: string;
}

/** A stanza forwarded to a room's owner and not confirmed yet: kept to be sent again. */
interface Unconfirmed {
  id: string;
  room: string;
  stanza: Element;
  hops: number;
  /** Completes the stanza's handling where it came from (the client's count, another node's confirmation). */
  done: Done | null;
  node: string;
  firstSent: number;
  /** When it was last looked up again (resend tick). */
  lastSent: number;
  /** When it was last actually sent to node. */
  sentToNode: number;
}

/** How long a draining node waits for an heir to say it loaded a room before it goes on. */
const TAKE_TIMEOUT_MS = 5_000;

export class MucService implements RoomHost, FeatureContext {
  /** The room events of this service, filled once by the core parts and the features. */
  readonly hooks: RoomHooks;
  readonly writer: ArchiveWriter;
  readonly limits: RoomHost['limits'];
  readonly domain: string;
  private readonly rooms = new Map<string, Room>();
  /** Stanzas for rooms being looked up (lease, then load), in arrival order. */
  private readonly pending = new Map<string, { stanza: Element; hops: number; done: Done | null }[]>();
  /** Rooms with an admission step (or a task) in progress: what came later for the room waits here, in order. */
  private readonly ordered = new Map<string, (() => Promise<void> | undefined)[]>();
  private readonly remote = new Map<string, { node: string; at: number }>();
  private readonly saving = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private resendTimer: NodeJS.Timeout | null = null;
  /** Rooms whose lease renewal is in flight: the next round skips only these. */
  private readonly renewing = new Set<string>();
  /** When the renewal rounds still unanswered were sent, oldest first. */
  private readonly renewRounds: number[] = [];
  /** False while the session store is known unreachable. */
  private storeUp = true;
  /** When this node sent the last successful acquisition or renewal of each room lease it holds. */
  private readonly leaseSentAt = new Map<string, number>();
  /** Forwarded stanzas waiting for the owner's confirmation, by id. */
  private readonly unconfirmed = new Map<string, Unconfirmed>();
  /** Stanza ids proposed for forwarded stanzas (by the node that first forwarded them). */
  private readonly proposed = new WeakMap<Element, string>();
  /** When the node that forwarded a stanza first did (ForwardedStanza.at). */
  private readonly proposedAt = new WeakMap<Element, number>();
  private readonly address: ServiceAddress;
  /** Set by a drain (handOver): rooms found free go to these nodes instead of being taken here. */
  private heirs: string[] | null = null;
  private nextHeir = 0;
  private readonly takeWaiters = new Map<string, () => void>();

  constructor(readonly server: Server, readonly options: MucServiceOptions, writer: ArchiveWriter, features: readonly RoomFeature[]) {
    this.domain = options.domain;
    this.writer = writer;
    this.limits = { messagesPerSecond: options.messagesPerSecond, messageBurst: options.messageBurst, maxNickLength: options.maxNickLength };
    this.hooks = new RoomHooks(server.log);
    this.address = new ServiceAddress(server, options.domain, options.name, this.hooks);
    for (const f of [...coreParts, ...features]) f.init(this.hooks, this);
  }

  get log(): Server['log'] {
    return this.server.log;
  }

  start(): void {
    this.server.router.addDomain(this.domain, (stanza) => this.route(stanza, 0));
    this.server.sessions.onHealth((h) => { this.storeUp = h.up; });
    this.timer = setInterval(() => void this.tick(), RENEW_MS);
    this.timer.unref();
    this.resendTimer = setInterval(() => this.resendUnconfirmed(), RESEND_TICK_MS);
    this.resendTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.resendTimer) clearInterval(this.resendTimer);
    this.server.router.removeDomain(this.domain);
    await this.writer.flushed();
    await Promise.all([...this.saving.values()]);
    await Promise.all([...this.rooms.keys()].map((name) => this.server.sessions.releaseLease(this.leaseKey(name)).catch(() => {})));
    this.rooms.clear();
  }

  /** A room this node holds, if loaded. */
  loadedRoom(name: string): Room | undefined {
    return this.rooms.get(name);
  }

  /** Loaded rooms (this node owns them). */
  loadedRooms(): IterableIterator<Room> {
    return this.rooms.values();
  }

  /** Runs task in the room's order (see FeatureContext.inRoomOrder). */
  inRoomOrder(name: string, task: () => Promise<void> | void): void {
    this.inOrder(name, () => {
      const r = task();
      return r instanceof Promise ? r : undefined;
    });
  }

  private leaseKey(name: string): string {
    return `muc:${this.domain}:${name}`;
  }

  // --- routing -------------------------------------------------------------------------------------

  /** Stanzas forwarded by other nodes, and the confirmations of those this node forwarded. */
  onForwarded(data: ForwardedStanza): void {
    if (data.confirm !== undefined) return this.confirmed(data.confirm);
    if (data.take) return this.take(data.take, data.from);
    if (data.taken) return this.takeWaiters.get(data.taken)?.();
    if (data.xml === undefined) return;
    const stanza = parseStanzaString(data.xml);
    if (!stanza) return;
    const { id, origin } = data;
    if (id === undefined || origin === undefined) return this.route(stanza, data.hops ?? 0);
    this.proposed.set(stanza, id);
    if (typeof data.at === 'number') this.proposedAt.set(stanza, data.at);
    // Confirmed once handled here: for a message, once committed in the room's archive.
    const confirm = () => this.server.cluster.send(origin, CLUSTER_TOPIC, { service: this.domain, confirm: id } satisfies ForwardedStanza);
    continueWith(stanza, confirm, () => this.route(stanza, data.hops ?? 0));
  }

  /** The stanza id proposed by the node that forwarded this stanza (RoomHost). */
  proposedId(stanza: Element): string | undefined {
    return this.proposed.get(stanza);
  }

  proposedStamp(stanza: Element): number | undefined {
    return this.proposedAt.get(stanza);
  }

  /** Counted by the module (metrics). */
  onDuplicate: () => void = () => {};
  duplicate(): void {
    this.onDuplicate();
  }

  route(stanza: Element, hops: number): void {
    const to = tryParseJid(stanza.attrs.to ?? '');
    if (!to) return;
    if (!to.local) {
      this.address.handle(stanza, to);
      return;
    }
    const name = to.local;
    const from = tryParseJid(stanza.attrs.from ?? '');
    if (from) this.hooks.prefetching(stanza, from);
    // Handled (XEP-0198, a forwarding node's confirmation) once the room has handled it, here or on its owner.
    const done = hold(stanza);
    this.inOrder(name, () => this.admit(name, stanza, hops, done));
  }

  /** Runs step now when nothing for the room is waiting, else behind what waits; an async step holds the room's later steps. */
  private inOrder(name: string, step: () => Promise<void> | undefined): void {
    const queue = this.ordered.get(name);
    if (queue) {
      queue.push(step);
      return;
    }
    let pending: Promise<void> | undefined;
    try {
      pending = step();
    } catch (e) {
      this.stepFailed(name, e);
    }
    if (!pending) return;
    this.ordered.set(name, []);
    void this.drain(name, pending);
  }

  private stepFailed(name: string, e: unknown): void {
    this.server.log.error('muc: room step failed', { err: e, room: name });
    this.server.metrics.handlerErrors.inc({ where: 'room' });
  }

  private async drain(name: string, first: Promise<void>): Promise<void> {
    const queue = this.ordered.get(name)!;
    let pending: Promise<void> | undefined = first;
    while (pending) {
      try {
        await pending;
      } catch (e) {
        this.stepFailed(name, e);
      }
      pending = undefined;
      while (!pending && queue.length > 0) {
        try {
          pending = queue.shift()!();
        } catch (e) {
          this.stepFailed(name, e);
        }
      }
    }
    this.ordered.delete(name);
  }

  /** The admission steps (events.ts), then the room. */
  private admit(name: string, stanza: Element, hops: number, done: Done | null): Promise<void> | undefined {
    const from = tryParseJid(stanza.attrs.from ?? '');
    if (!from) {
      done?.();
      return undefined;
    }
    const admission = new StanzaAdmission(this, name, stanza, from);
    let waiting: Promise<'handled' | undefined> | undefined;
    try {
      waiting = this.hooks.admission(admission);
    } catch (e) {
      admission.fail(e);
      done?.();
      return undefined;
    }
    if (!waiting) {
      this.deliver(name, stanza, hops, done);
      return undefined;
    }
    return waiting.then(
      (verdict) => { if (verdict !== 'handled') this.deliver(name, stanza, hops, done); else done?.(); },
      (e: unknown) => { admission.fail(e); done?.(); },
    );
  }

  /** Does this node hold the room, with a lease it is sure has not lapsed? (No Redis round trip.) */
  private owned(name: string): Room | undefined {
    const room = this.rooms.get(name);
    if (!room) return undefined;
    const sentAt = this.leaseSentAt.get(name);
    if (sentAt !== undefined && Date.now() - sentAt < LEASE_MS - LEASE_MARGIN_MS) return room;
    // Renewals failed for too long: the lease may lapse any moment and another node take the room.
    // Stop acting as its owner now; the next stanza looks the room up again.
    this.server.log.warn('muc: could not renew the lease of a room in time; no longer acting as its owner', { room: room.jid });
    this.rooms.delete(name);
    this.leaseSentAt.delete(name);
    return undefined;
  }

  /**
   * Cut off from Redis (known down, or lease renewals unanswered for RENEW_STALL_MS): this node could
   * commit a message and not fan it out to the other nodes, nor reach an owner elsewhere. It takes
   * nothing new for any room until Redis answers again.
   */
  fenced(): boolean {
    if (!this.storeUp) return true;
    const oldest = this.renewRounds[0];
    return oldest !== undefined && Date.now() - oldest > RENEW_STALL_MS;
  }

  /** Hands an admitted stanza to the room: here, after loading it, or on the node that holds it. */
  private deliver(name: string, stanza: Element, hops: number, done: Done | null): void {
    if (this.fenced()) {
      // Refused before anything is committed: the sender knows, and sends again later (type wait).
      const reply = errorReply(stanza, new StanzaError('recipient-unavailable', 'the room is not reachable now; try again', 'wait'));
      if (reply) this.server.router.route(reply);
      done?.();
      return;
    }
    const room = this.owned(name);
    if (room) {
      continueWith(stanza, done, () => room.handle(stanza));
      return;
    }
    const queue = this.pending.get(name);
    if (queue) {
      queue.push({ stanza, hops, done });
      return;
    }
    const known = this.remote.get(name);
    if (known && Date.now() - known.at < REMOTE_TTL_MS) {
      this.forward(known.node, name, stanza, hops, done);
      return;
    }
    this.pending.set(name, [{ stanza, hops, done }]);
    void this.resolve(name);
  }

  /**
   * Sends a stanza to the room's owner and keeps it until the owner confirms it handled it (for a
   * message: committed it). The id goes with it, and with it again when it is resent: the owner uses
   * it as the message's stanza id, so a resend is recognised even by the next owner.
   */
  private forward(node: string, name: string, stanza: Element, hops: number, done: Done | null): void {
    const proposedId = this.proposed.get(stanza);
    if (hops >= MAX_HOPS && proposedId !== undefined) {
      // Bounced between nodes while the room moves. The node that sent it here keeps it until a holder
      // confirms it, sends it again meanwhile to the holder found anew, and refuses it only when none
      // confirmed it in time (GIVE_UP_MS). Refused here, a copy could be refused while another copy of
      // it (a resend) is committed: the sender would be told no for a message the room keeps.
      this.server.log.warn('muc: stanza bounced between nodes; left to the node before to send again', { to: stanza.attrs.to });
      this.unconfirmed.delete(proposedId);
      return;
    }
    if (hops >= MAX_HOPS) {
      // From a node that does not send again (no proposed id): refused, as there is no one to retry.
      this.server.log.warn('muc: stanza bounced between nodes; refused', { to: stanza.attrs.to });
      const reply = errorReply(stanza, new StanzaError('remote-server-timeout', 'the room is moving between nodes; try again'));
      if (reply) this.server.router.route(reply);
      done?.();
      return;
    }
    let id = proposedId;
    if (id === undefined) this.proposed.set(stanza, (id = randomUUID()));
    const now = Date.now();
    let at = this.proposedAt.get(stanza);
    if (at === undefined) this.proposedAt.set(stanza, (at = now));
    const waiting = this.unconfirmed.get(id);
    if (waiting) {
      // Sent again: the first sending's completion stands.
      waiting.lastSent = now;
      if (waiting.node === node && now - waiting.sentToNode < RESEND_SAME_OWNER_MS) return;
      waiting.node = node;
      waiting.sentToNode = now;
    } else {
      this.unconfirmed.set(id, { id, room: name, stanza, hops, done, node, firstSent: now, lastSent: now, sentToNode: now });
    }
    const data: ForwardedStanza = { service: this.domain, xml: stanza.toString(), hops: hops + 1, id, origin: this.server.sessions.nodeId, at };
    this.server.cluster.send(node, CLUSTER_TOPIC, data);
  }

  /** The owner handled a stanza this node forwarded. */
  private confirmed(id: string): void {
    const waiting = this.unconfirmed.get(id);
    if (!waiting) return;
    this.unconfirmed.delete(id);
    waiting.done?.();
  }

  /**
   * Sends again what owners have not confirmed (the owner died, or the message was lost on the way), to
   * whichever node holds the room now: possibly this one, after its lease lapsed. Past GIVE_UP_MS the
   * sender gets an error rather than silence.
   */
  private resendUnconfirmed(): void {
    if (this.unconfirmed.size === 0) return;
    const now = Date.now();
    for (const waiting of [...this.unconfirmed.values()]) {
      if (now - waiting.lastSent < RESEND_AFTER_MS) continue;
      if (now - waiting.firstSent > GIVE_UP_MS) {
        this.unconfirmed.delete(waiting.id);
        this.server.log.warn('muc: no owner of the room confirmed a stanza; refused', { room: `${waiting.room}@${this.domain}` });
        const reply = errorReply(waiting.stanza, new StanzaError('recipient-unavailable', 'the room is not reachable now; try again', 'wait'));
        if (reply) this.server.router.route(reply);
        waiting.done?.();
        continue;
      }
      // Kept, to be sent once this node reaches Redis again (or refused at GIVE_UP_MS): never both.
      if (this.fenced()) continue;
      waiting.lastSent = now;
      const known = this.remote.get(waiting.room);
      if (known?.node === waiting.node) this.remote.delete(waiting.room);
      // Not through admission again: the stanza was admitted before it was first forwarded.
      this.deliver(waiting.room, waiting.stanza, waiting.hops, () => this.confirmed(waiting.id));
    }
  }

  /** Takes the room's lease (or finds who has it), loads the room, then handles what queued up. */
  private async resolve(name: string): Promise<void> {
    let holder: string | null = null;
    let room: Room | null = null;
    const asked = Date.now();
    try {
      // A draining node never takes a room: it finds the holder, or hands the room to an heir.
      holder = this.heirs
        ? (await this.server.sessions.leaseHolder(this.leaseKey(name))) ?? this.heir()
        : await this.server.sessions.acquireLease(this.leaseKey(name), LEASE_MS);
      if (holder === this.server.sessions.nodeId) {
        this.leaseSentAt.set(name, asked);
        // The archive's newest messages are read once, beside the record, for the room and every
        // feature that wants them (a room that turns out not to exist finds none).
        const wanted = Math.max(RECENT_ON_LOAD, this.hooks.newestWanted());
        const [record, occupants, newest] = await Promise.all([
          this.server.stores.rooms.get(this.domain, name),
          this.server.sessions.stateGetAll(this.leaseKey(name)),
          this.server.stores.archive.lastN(`${name}@${this.domain}`, wanted),
        ]);
        room = new Room(this, name, record);
        if (record) {
          // What the room committed lately, under any owner: a message sent again is recognised.
          room.recent.load(newest.slice(-RECENT_ON_LOAD));
          await this.hooks.prepared(room, newest);
          // Another node held the room before (and died, or let it go with people inside).
          if (Object.keys(occupants).length > 0) room.restoreOccupants(occupants);
        } else room.isNew = true;
      }
    } catch (e) {
      this.server.log.error('muc: room lookup failed', { err: e, room: name });
    }
    // What this node forwarded to an owner that never confirmed it goes first, in the order it came:
    // it came before what queued up while the room was looked up.
    const unconfirmed: { stanza: Element; hops: number; done: Done | null }[] = [];
    for (const waiting of this.unconfirmed.values()) {
      if (waiting.room !== name || waiting.node === holder) continue;
      waiting.lastSent = Date.now();
      unconfirmed.push({ stanza: waiting.stanza, hops: waiting.hops, done: () => this.confirmed(waiting.id) });
    }
    const waitingQueue = this.pending.get(name) ?? [];
    const queue = unconfirmed.length === 0 ? waitingQueue : [...unconfirmed, ...waitingQueue.filter((q) => !unconfirmed.some((u) => u.stanza === q.stanza))];
    this.pending.delete(name);
    if (room) {
      this.remote.delete(name);
      this.rooms.set(name, room);
      for (const { stanza, done } of queue) continueWith(stanza, done, () => this.roomOrCreate(room, stanza));
      // A held join (a recorded creation) decides later; an idle empty room is unloaded by tick().
      if (room.isNew && room.empty && !room.holding) this.unload(room, false);
      return;
    }
    if (holder) {
      this.remote.set(name, { node: holder, at: Date.now() });
      for (const { stanza, hops, done } of queue) this.forward(holder, name, stanza, hops, done);
      return;
    }
    for (const { stanza, done } of queue) {
      const reply = errorReply(stanza, new StanzaError('internal-server-error', 'the room is unavailable'));
      if (reply) this.server.router.route(reply);
      done?.();
    }
  }

  /** A room that does not exist yet only comes into being by a join from someone allowed to create. */
  private roomOrCreate(room: Room, stanza: Element): void {
    if (!room.isNew) {
      room.handle(stanza);
      return;
    }
    const from = tryParseJid(stanza.attrs.from ?? '');
    const to = tryParseJid(stanza.attrs.to ?? '');
    if (!from || !to) return;
    const isJoin = stanza.name === 'presence' && stanza.attrs.type === undefined && to.resource !== '';
    if (!isJoin) {
      if (stanza.name === 'presence' && stanza.attrs.type === 'unavailable') return;
      // §7.2.1: a join without a nick is jid-malformed, whether or not the room exists.
      const noNick = stanza.name === 'presence' && stanza.attrs.type === undefined;
      const reply = errorReply(stanza, noNick ? new StanzaError('jid-malformed', 'a room nick is required') : new StanzaError('item-not-found', 'no such room'));
      if (reply) this.server.router.route(reply);
      return;
    }
    try {
      this.mayCreate(from, to.local);
    } catch (e) {
      const reply = errorReply(stanza, e instanceof StanzaError ? e : new StanzaError('internal-server-error'));
      if (reply) this.server.router.route(reply);
      return;
    }
    room.handle(stanza);
  }

  private mayCreate(creator: Jid, name: string): void {
    const policy = this.options.roomCreation;
    const local = creator.domain === this.server.domain;
    if (policy === 'admins' && !this.server.isAdmin(creator.bareString())) throw new StanzaError('not-allowed', 'only administrators may create rooms');
    if (policy === 'local' && !local) throw new StanzaError('not-allowed', 'only users of this server may create rooms');
    this.hooks.check('room/pre-create', { service: this.domain, name, creator });
  }

  // --- the service's own JID ----------------------------------------------------------------------------

  /** Registers the answer to IQs to the service's JID in one namespace (advertised in its disco#info). */
  serviceIq(ns: string, handler: ServiceIqHandler): void {
    this.address.serviceIqs.set(ns, handler);
  }

  /** The public rooms as the store lists them (hidden and locked rooms are not in it), by localpart. */
  get publicRooms(): RoomLister {
    return this.address.publicRooms;
  }

  // --- RoomHost ----------------------------------------------------------------------------------------

  /** Writes the room record; writes that come while one is in flight are folded into one more. */
  save(room: Room): void {
    const key = room.name;
    if (this.saving.has(key)) {
      this.dirty.add(key);
      return;
    }
    const run = async (): Promise<void> => {
      do {
        this.dirty.delete(key);
        try {
          await this.server.stores.rooms.put(room.toRecord());
        } catch (e) {
          this.server.log.error('muc: saving room failed', { err: e, room: room.jid });
        }
      } while (this.dirty.has(key));
      this.saving.delete(key);
    };
    this.saving.set(key, run());
  }

  /** Set by the module to feed its commit-latency histogram. */
  onCommitted: (seconds: number) => void = () => {};

  committed(seconds: number): void {
    this.onCommitted(seconds);
  }

  occupantsChanged(room: Room): void {
    const key = this.leaseKey(room.name);
    for (const [nick, value] of room.takeChangedOccupants()) {
      // One connection keeps these writes in order; a failure only costs a takeover its occupant list.
      this.server.sessions.stateSet(key, nick, value).catch((e) => this.server.log.warn('muc: saving occupants failed', { err: e, room: room.jid }));
    }
  }

  destroyed(room: Room, removeArchive: boolean): void {
    this.rooms.delete(room.name);
    this.leaseSentAt.delete(room.name);
    void (async () => {
      await this.server.sessions.stateDelete(this.leaseKey(room.name));
      await this.saving.get(room.name);
      await this.server.stores.rooms.delete(this.domain, room.name);
      if (removeArchive) await this.server.stores.archive.removeArchive(room.jid);
      await this.server.sessions.releaseLease(this.leaseKey(room.name));
    })().catch((e) => this.server.log.error('muc: destroying room failed', { err: e, room: room.jid }));
  }

  emptied(room: Room): void {
    if (!room.persistent && !room.locked) {
      this.rooms.delete(room.name);
      this.leaseSentAt.delete(room.name);
      void (async () => {
        await this.saving.get(room.name);
        await this.server.stores.rooms.delete(this.domain, room.name);
        await this.server.sessions.releaseLease(this.leaseKey(room.name));
      })().catch((e) => this.server.log.error('muc: removing temporary room failed', { err: e, room: room.jid }));
    } else if (room.locked) {
      // Nobody configured it: a locked room that empties never existed (§10.1.1).
      this.unload(room, true);
    }
  }

  private unload(room: Room, forget: boolean): void {
    this.rooms.delete(room.name);
    this.leaseSentAt.delete(room.name);
    void (async () => {
      await this.saving.get(room.name);
      if (forget) await this.server.stores.rooms.delete(this.domain, room.name);
      await this.server.sessions.releaseLease(this.leaseKey(room.name));
    })().catch((e) => this.server.log.error('muc: unloading room failed', { err: e, room: room.jid }));
  }

  /**
   * Keeps the leases of loaded rooms (all at once: one round trip's time) and unloads persistent rooms
   * that stayed empty. A round goes out every RENEW_MS even while an earlier one is unanswered (a busy
   * node's replies come late): only rooms whose renewal is still in flight wait, so one slow reply
   * does not leave every lease a round older, and a lease held under load does not lapse.
   */
  private async tick(): Promise<void> {
    const now = Date.now();
    for (const [name, r] of this.remote) if (now - r.at > REMOTE_TTL_MS) this.remote.delete(name);
    const due: Room[] = [];
    for (const room of this.rooms.values()) {
      if (this.renewing.has(room.name)) continue;
      if (room.empty && now - room.lastActive > this.options.idleUnloadSeconds * 1000 && !this.saving.has(room.name)) this.unload(room, false);
      else due.push(room);
    }
    if (due.length === 0) return;
    this.renewRounds.push(now);
    try {
      for (const room of due) this.renewing.add(room.name);
      let answers: boolean[] = [];
      try {
        // One call for every lease (batched by the store): a node with 33,000 rooms made 33,000 calls a second.
        answers = await this.server.sessions.renewLeases(due.map((room) => this.leaseKey(room.name)), LEASE_MS);
      } catch (e) {
        this.server.log.warn('muc: lease renewal failed', { err: e, rooms: due.length });
      } finally {
        for (const room of due) this.renewing.delete(room.name);
      }
      answers.forEach((ok, i) => {
        const room = due[i]!;
        if (this.rooms.get(room.name) !== room) return;
        if (ok) {
          if ((this.leaseSentAt.get(room.name) ?? 0) < now) this.leaseSentAt.set(room.name, now);
        } else {
          this.server.log.warn('muc: lost the lease of a room (it lapsed or another node took it); letting it go', { room: room.jid });
          this.rooms.delete(room.name);
          this.leaseSentAt.delete(room.name);
        }
      });
    } finally {
      this.renewRounds.splice(this.renewRounds.indexOf(now), 1);
    }
  }

  // --- drain ---------------------------------------------------------------------------------------

  /**
   * Hands every room this node holds to the heirs (other nodes; a drain). Each room, in its order
   * (after everything it took before): stops taking stanzas (later ones wait behind this step),
   * waits until everything it accepted is committed and fanned out, saves its record and occupants,
   * releases its lease and asks an heir to load it now. What waited then goes through the usual path:
   * to the lease's new holder, or to an heir that takes it. Occupants on other nodes stay; the heir
   * reads them from the shared state as after a takeover. Resolves with the number of rooms moved.
   */
  async handOver(heirs: string[]): Promise<number> {
    if (heirs.length === 0) return 0;
    this.heirs = [...heirs];
    let moved = 0;
    // A room being looked up when the drain began may still load here: go round until none is held.
    for (let round = 0; round < 100 && (this.rooms.size > 0 || this.pending.size > 0); round++) {
      const names = [...this.rooms.keys()];
      if (names.length === 0) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      await Promise.all(names.map((name) => new Promise<void>((resolve) => {
        this.inOrder(name, () => this.handOverRoom(name).then((ok) => { if (ok) moved++; }).finally(resolve));
      })));
    }
    return moved;
  }

  private async handOverRoom(name: string): Promise<boolean> {
    const room = this.rooms.get(name);
    if (!room) return false;
    // A room waiting for a write (a recorded join) finishes it first.
    for (let i = 0; i < 500 && room.holding; i++) await new Promise((r) => setTimeout(r, 10));
    this.rooms.delete(name);
    await this.writer.flushed();
    this.save(room);
    await this.saving.get(name);
    this.occupantsChanged(room);
    // The occupant writes went first on the same connection, so the heir reads them all.
    await this.server.sessions.releaseLease(this.leaseKey(name));
    const heir = this.heir();
    this.remote.set(name, { node: heir, at: Date.now() });
    // The heir loads the room (and its occupants) while their sessions still exist here: a session
    // that ended before would be dropped from the room, and what it sent last refused.
    const t0 = Date.now();
    const taken = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { this.takeWaiters.delete(name); resolve(false); }, TAKE_TIMEOUT_MS);
      this.takeWaiters.set(name, () => { clearTimeout(timer); this.takeWaiters.delete(name); resolve(true); });
      this.server.cluster.send(heir, CLUSTER_TOPIC, { service: this.domain, xml: '', hops: 0, take: name, from: this.server.sessions.nodeId } satisfies ForwardedStanza);
    });
    if (taken) this.server.log.info('muc: room handed over', { room: room.jid, to: heir, ms: Date.now() - t0 });
    else this.server.log.warn('muc: room handed over; the heir did not confirm in time', { room: room.jid, to: heir, ms: TAKE_TIMEOUT_MS });
    return true;
  }

  private heir(): string {
    const heirs = this.heirs!;
    return heirs[this.nextHeir++ % heirs.length]!;
  }

  /** Loads a room now (a draining node handed it here) unless it is here already; tells from when done. */
  private take(name: string, from: string | undefined): void {
    const done = () => { if (from) this.server.cluster.send(from, CLUSTER_TOPIC, { service: this.domain, xml: '', hops: 0, taken: name } satisfies ForwardedStanza); };
    this.inOrder(name, () => {
      if (this.rooms.has(name)) return void done();
      if (this.pending.has(name)) {
        // A lookup is on its way already (it was not awaited by the step that began it): wait for it.
        return (async () => {
          for (let i = 0; i < 500 && this.pending.has(name); i++) await new Promise((r) => setTimeout(r, 10));
          done();
        })();
      }
      this.pending.set(name, []);
      return this.resolve(name).then(done);
    });
  }

  // --- session store faults (src/muc/recovery.ts) -------------------------------------------------------

  /** How long a lease on a room lasts unrenewed. */
  get leaseMs(): number {
    return LEASE_MS;
  }

  /** The room's key in the session store: its lease and its occupants' hash. */
  storeKey(name: string): string {
    return this.leaseKey(name);
  }

  /** Lets a loaded room go without touching the store: the room is no longer this node's to run. */
  forget(room: Room): void {
    if (this.rooms.get(room.name) !== room) return;
    this.rooms.delete(room.name);
    this.leaseSentAt.delete(room.name);
  }

  /** A node died: its sessions leave every room here; rooms it held are found again on next use. */
  nodeLost(node: string, fullJids: Set<string>): void {
    for (const [name, r] of this.remote) if (r.node === node) this.remote.delete(name);
    // What it never confirmed goes to the next owner at the next resend tick.
    for (const waiting of this.unconfirmed.values()) if (waiting.node === node) waiting.lastSent = 0;
    for (const room of this.rooms.values()) room.dropSessions(fullJids);
  }
}

/** A stanza at the room's door (events.ts Admission), answering from the room's JID. */
class StanzaAdmission implements Admission {
  readonly room: Room | undefined;
  constructor(private readonly service: MucService, readonly name: string, readonly stanza: Element, readonly from: Jid) {
    this.room = service.loadedRoom(name);
  }

  result(payload?: Element): 'handled' {
    const r = new Element('iq', { type: 'result', id: this.stanza.attrs.id ?? '', from: `${this.name}@${this.service.domain}`, to: this.from.toString() });
    if (payload) r.append(payload);
    this.service.server.router.route(r);
    return 'handled';
  }

  fail(e: unknown): 'handled' {
    if (!(e instanceof StanzaError)) {
      this.service.server.log.error('muc: admission failed', { err: e, room: this.name });
      this.service.server.metrics.handlerErrors.inc({ where: 'room' });
    }
    const r = errorReply(this.stanza, e instanceof StanzaError ? e : new StanzaError('internal-server-error'), `${this.name}@${this.service.domain}`);
    if (r) this.service.server.router.route(r);
    return 'handled';
  }
}

export { CLUSTER_TOPIC, type ForwardedStanza };
