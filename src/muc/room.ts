// One multi-user chat room (XEP-0045), the core: occupants, roles and affiliations, presence and
// message fan-out, and dispatch. Everything optional about a room (its options, history, subject,
// registration, invitations, moderation, hats…) is a feature in src/muc/features/ hooking the events
// of src/muc/events.ts; this file imports none of them.
//
// Room state changes synchronously as each stanza is handled; what the room sends goes through an
// ordered outbox (outbox.ts), so a message waits for its archive commit without letting later
// presence overtake it, and every occupant sees one order.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Element, escapeAttr } from '../../protocol/xml.js';
import { parseStanzaString } from '../../protocol/xml-stream.js';
import { Jid, tryParseJid } from '../../protocol/jid.js';
import { StanzaError, errorReply } from '../../protocol/errors.js';
import { NS } from '../../protocol/namespaces.js';
import {
  MUC_NS, STATUS, MucProtocolError, parseJoin, mucUserX, prepareNick, type Affiliation, type Role, type MucUserItem, type JoinRequest,
} from '../../protocol/muc.js';
import type { RoomRecord, RoomAffiliation, RoomSubject, ComplianceEvent } from '../../storage/types.js';
import type { Server } from '../context.js';
import type { ArchiveWriter } from '../archive-writer.js';
import type { RoomHooks, CommittedMessage } from './events.js';
import type { RoomConfig } from './option.js';
import { Outbox, type OutSlot } from './outbox.js';
import { RecentMessages, originKey, idKey, committedByOtherHolder, stampFor, type Accepted } from './recent.js';
import { hold } from '../streams/completion.js';
import { setAffiliation, reserveNick } from './membership.js';
import { privateMessage, occupantIq } from './relay.js';
import { Occupant, cleanPresence, kickedByError, snapshotOccupant, restoreOccupant } from './occupants.js';
import {
  occupantPresence, sendJoin, updatePresence, broadcastPresence, changeNick, leave, removeOccupant, probe, type Deliveries, type PresenceOptions,
} from './presence.js';

/** What a room uses of the server: the session table, delivery and routing, the log. */
export type RoomServer = Pick<Server, 'domain' | 'log' | 'metrics' | 'router' | 'sessions'>;

/** What a room needs from the service that holds it. */
export interface RoomHost {
  readonly server: RoomServer;
  readonly domain: string;
  readonly writer: ArchiveWriter;
  readonly hooks: RoomHooks;
  readonly limits: { messagesPerSecond: number; messageBurst: number; maxNickLength: number };
  /** Stores the room record (persistent rooms; temporary ones too, so another node can take over). */
  save(room: Room): void;
  /** The room has been destroyed: forget it. */
  destroyed(room: Room, removeArchive: boolean): void;
  /** The last occupant left. */
  emptied(room: Room): void;
  /** Occupants joined, left or changed (room.takeChangedOccupants() says which). */
  occupantsChanged(room: Room): void;
  /** A message waited this long (seconds) between being accepted and being committed (metrics). */
  committed(seconds: number): void;
  /** The stanza id a node that forwarded this stanza proposed (kept when it resends it), if any. */
  proposedId(stanza: Element): string | undefined;
  /** When that node first forwarded it (ms since the epoch), if it said. */
  proposedStamp?(stanza: Element): number | undefined;
  /** A message came again and was recognised (metrics). */
  duplicate(): void;
}

/** The records of a message nobody captures (shared: message/persist gets its own array). */
const NO_RECORDS: ComplianceEvent[] = [];

/** Adds 'to' to a serialised stanza that has none: routing without re-serialising per recipient. */
function withTo(xml: string, name: string, to: string): string {
  return '<' + name + " to='" + escapeAttr(to) + "'" + xml.slice(name.length + 1);
}

export class Room {
  readonly jid: string;
  readonly hooks: RoomHooks;
  /** Option values by key (features declare them; see option.ts). */
  config: RoomConfig;
  /** Bare JID → stored affiliation. */
  readonly affiliations = new Map<string, RoomAffiliation>();
  /** Registered nicks (§7.10): bare JID → nick. */
  readonly nicks = new Map<string, string>();
  subject: RoomSubject | null;
  /** A new room stays locked until its owner configures it (§10.1). */
  locked = false;
  /** True until the first occupant has joined a room that did not exist before. */
  isNew = false;
  readonly createdAt: Date;
  readonly occupants = new Map<string, Occupant>();
  /** Full real JID → occupant. */
  readonly byRealJid = new Map<string, Occupant>();
  lastActive = Date.now();
  private readonly outbox: Outbox;
  private readonly idSalt: string;
  private readonly changedOccupants = new Set<string>();
  private destroyed = false;
  /** Stanzas waiting while the room holds (see hold); null when it takes stanzas. */
  private held: Element[] | null = null;
  /** Messages accepted lately, to recognise one sent again (recent.ts). */
  readonly recent = new RecentMessages();

  constructor(readonly host: RoomHost, readonly name: string, record: RoomRecord | null) {
    this.jid = `${name}@${host.domain}`;
    this.hooks = host.hooks;
    this.outbox = new Outbox((err) => this.server.log.error('muc outbox item failed', { err, room: this.jid }));
    this.config = host.hooks.defaults();
    if (record) {
      for (const k of Object.keys(this.config)) {
        const v = record.config[k];
        if (v !== undefined && typeof v === typeof this.config[k]) this.config[k] = v;
      }
      for (const [j, a] of Object.entries(record.affiliations)) this.affiliations.set(j, a);
      this.subject = record.subject;
      this.createdAt = record.createdAt;
      this.idSalt = typeof record.config.idSalt === 'string' ? record.config.idSalt : randomBytes(16).toString('hex');
      this.locked = record.config.locked === true;
      const nicks = record.config.nicks;
      if (nicks && typeof nicks === 'object') for (const [j, n] of Object.entries(nicks as Record<string, string>)) this.nicks.set(j, n);
      this.hooks.build('room/loaded', { room: this, record });
    } else {
      this.subject = null;
      this.createdAt = new Date();
      this.idSalt = randomBytes(16).toString('hex');
    }
  }

  get server(): RoomServer {
    return this.host.server;
  }

  get empty(): boolean {
    return this.occupants.size === 0;
  }

  toRecord(): RoomRecord {
    const record: RoomRecord = {
      service: this.host.domain, name: this.name,
      config: { ...this.config, idSalt: this.idSalt, locked: this.locked, nicks: Object.fromEntries(this.nicks) },
      affiliations: Object.fromEntries(this.affiliations), subject: this.subject, createdAt: this.createdAt, persistent: false,
    };
    this.hooks.build('room/saving', { room: this, record });
    return record;
  }

  save(): void {
    this.host.save(this);
  }

  /** Does the room stay when its last occupant leaves? */
  get persistent(): boolean {
    return this.hooks.decide('room/persistent', { room: this }) === true;
  }

  // --- affiliations and roles ------------------------------------------------------------------

  affiliationOf(bare: string): Affiliation {
    return this.hooks.decide('occupant/affiliation', { room: this, bare }) ?? this.affiliations.get(bare) ?? 'none';
  }

  defaultRole(affiliation: Affiliation, bare?: string): Role {
    if (affiliation === 'owner' || affiliation === 'admin') return 'moderator';
    if (affiliation === 'outcast') return 'none';
    return this.hooks.decide('occupant/default-role', { room: this, affiliation, bare }) ?? 'participant';
  }

  /** May viewer (undefined: every occupant) see real JIDs? */
  seesJids(viewer: Occupant | undefined): boolean {
    return viewer?.role === 'moderator' || this.hooks.decide('occupant/sees-jids', { room: this, viewer }) === true;
  }

  /** Is the presence of occupants with this role broadcast? */
  broadcasts(role: Role): boolean {
    return this.hooks.decide('presence/broadcast', { room: this, role }) ?? role !== 'none';
  }

  occupantIdFor(bare: string): string {
    return createHash('sha256').update(this.idSalt).update('\0').update(bare).digest('base64');
  }

  /** Bare JID that registered this nick (§7.10), if any. */
  nickReservedFor(nick: string): string | null {
    for (const [bare, n] of this.nicks) if (n === nick) return bare;
    return null;
  }

  /** Every session of every occupant. */
  sessions(filter?: (o: Occupant) => boolean): string[] {
    const out: string[] = [];
    for (const o of this.occupants.values()) if (!filter || filter(o)) for (const s of o.sessions.keys()) out.push(s);
    return out;
  }

  // --- sending -----------------------------------------------------------------------------------

  emit(run: () => void): void { this.outbox.emit(run); }
  slot(): OutSlot { return this.outbox.slot(); }
  release(slot: OutSlot, run: () => void): void { this.outbox.release(slot, run); }

  /** Sends one serialised stanza (without 'to') to a real JID. */
  deliver(full: string, xml: string, name: string): void {
    const rec = this.server.sessions.get(full);
    if (rec) {
      this.server.router.deliverTo(rec, withTo(xml, name, full), name);
      return;
    }
    const j = tryParseJid(full);
    // A local session that went away: its unavailable presence is on the way. Other domains
    // (components, bridges) are routed.
    if (!j || j.domain === this.server.domain) return;
    const el = parseStanzaString(withTo(xml, name, full));
    if (el) this.server.router.route(el);
  }

  /** Emits xml to each of targets, in the room's order. */
  send(targets: string[], xml: string, name: string): void {
    this.emit(() => { for (const t of targets) this.deliver(t, xml, name); });
  }

  /** Emits each [to, presence] pair, in the room's order. */
  sendAll(out: Deliveries): void {
    this.emit(() => { for (const [to, xml] of out) this.deliver(to, xml, 'presence'); });
  }

  presenceOf(occ: Occupant, opts: PresenceOptions): string {
    return occupantPresence(this, occ, opts);
  }

  /** Answers a stanza with an error from the room. */
  fail(stanza: Element, e: unknown): void {
    if (!(e instanceof StanzaError)) {
      this.server.log.error('muc: stanza failed', { err: e, room: this.jid });
      this.server.metrics.handlerErrors.inc({ where: 'room' });
    }
    const reply = errorReply(stanza, e instanceof StanzaError ? e : new StanzaError('internal-server-error'));
    if (!reply) return;
    // RFC 6120 §8.3.2: the entity that generated the error says so.
    const error = reply.getChild('error');
    if (error && e instanceof StanzaError) error.attrs = { by: this.jid, ...error.attrs };
    this.server.router.route(reply);
  }

  // --- entry point ---------------------------------------------------------------------------------

  handle(stanza: Element): void {
    if (this.held) {
      this.held.push(stanza);
      return;
    }
    if (this.destroyed) {
      this.server.router.bounce(stanza, new StanzaError('item-not-found', 'the room was destroyed'));
      return;
    }
    this.lastActive = Date.now();
    const from = tryParseJid(stanza.attrs.from ?? '');
    const to = tryParseJid(stanza.attrs.to ?? '');
    if (!from || !to) return;
    try {
      if (stanza.name === 'presence') this.onPresence(stanza, from, to.resource);
      else if (stanza.name === 'message') this.onMessage(stanza, from, to.resource);
      else if (stanza.name === 'iq') this.onIq(stanza, from, to.resource);
    } catch (e) {
      this.fail(stanza, e);
    }
    if (this.changedOccupants.size > 0) this.host.occupantsChanged(this);
  }

  // --- occupants as shared state, for the node that takes the room over ------------------------------

  /** Marks an occupant as changed (shared with other nodes after this stanza). */
  touch(occ: Occupant): void {
    this.changedOccupants.add(occ.nick);
  }

  /** Occupants changed since the last call: nick → serialised occupant, or null when gone. */
  takeChangedOccupants(): [string, string | null][] {
    const out: [string, string | null][] = [];
    for (const nick of this.changedOccupants) {
      const occ = this.occupants.get(nick);
      out.push([nick, occ ? snapshotOccupant(occ) : null]);
    }
    this.changedOccupants.clear();
    return out;
  }

  /** Takes over the occupants another node held; sessions that no longer exist leave, and the others are told. */
  restoreOccupants(state: Record<string, string>): void {
    const gone: [Occupant, string][] = [];
    for (const [nick, json] of Object.entries(state)) {
      const occ = restoreOccupant(nick, json, (bare) => this.occupantIdFor(bare));
      if (!occ || occ.sessions.size === 0) continue;
      for (const full of occ.sessions.keys()) {
        this.byRealJid.set(full, occ);
        if (!this.server.sessions.get(full)) gone.push([occ, full]);
      }
      this.occupants.set(nick, occ);
    }
    for (const [occ, full] of gone) if (occ.sessions.has(full)) leave(this, occ, full, null, []);
    if (this.changedOccupants.size > 0) this.host.occupantsChanged(this);
  }

  /** Sessions that vanished with a node (no unavailable presence will come). */
  dropSessions(fulls: Set<string>): void {
    for (const full of fulls) {
      const occ = this.byRealJid.get(full);
      if (occ) leave(this, occ, full, null, []);
    }
    if (this.changedOccupants.size > 0) this.host.occupantsChanged(this);
  }

  // --- presence (§7.2, §7.6, §7.14) ------------------------------------------------------------------

  private onPresence(stanza: Element, from: Jid, nick: string): void {
    const type = stanza.attrs.type;
    const full = from.toString();
    const occ = this.byRealJid.get(full);
    if (type === 'error') {
      // §7.14 / Prosody #978: an error from an occupant's client ends that session's occupancy, and
      // the others learn why.
      if (occ) leave(this, occ, full, kickedByError(stanza), [STATUS.removedError]);
      return;
    }
    if (type === 'probe') return probe(this, occ, nick);
    if (type === 'unavailable') {
      if (occ) leave(this, occ, full, stanza, []);
      return;
    }
    if (type !== undefined) return; // subscription requests: the room does not take them
    if (!nick) throw new MucProtocolError('jid-malformed', 'a room nick is required');
    const prepared = prepareNick(nick);
    if (prepared === null || [...prepared].length > this.host.limits.maxNickLength) {
      throw new MucProtocolError('jid-malformed', 'invalid room nick');
    }
    if (occ) {
      if (occ.nick === prepared) updatePresence(this, occ, full, stanza);
      else changeNick(this, occ, full, prepared, stanza);
      return;
    }
    // The parsed address already carries the prepared nick: compare with what the client wrote (210).
    const to = stanza.attrs.to ?? '';
    const requested = to.includes('/') ? to.slice(to.indexOf('/') + 1) : nick;
    this.join(stanza, from, prepared, prepared !== requested);
  }

  private join(stanza: Element, from: Jid, nick: string, nickAssigned: boolean): void {
    const bare = from.bareString();
    const request = parseJoin(stanza);
    const affiliation = this.affiliationOf(bare);
    const existing = this.occupants.get(nick);
    this.hooks.check('occupant/pre-join', { room: this, jid: from, bare, nick, affiliation, request, existing });
    const persist = { room: this, jid: from, bare, nick, existing, compliance: [] as ComplianceEvent[] };
    this.hooks.build('occupant/persist', persist);
    if (persist.compliance.length === 0) {
      this.enter(stanza, from, nick, nickAssigned, request);
      return;
    }
    // Written before anyone sees the join: the room takes no other stanza until the write is done, so
    // the checks above still hold when the occupant enters, and a failed write leaves no trace.
    this.holdRoom((done) => this.host.writer.writeWith(null, persist.compliance, (err) => {
      try {
        if (err) {
          this.server.log.error('muc: join record failed; join refused', { err, room: this.jid });
          this.fail(stanza, new StanzaError('internal-server-error', 'the join could not be recorded'));
        } else if (this.destroyed) {
          this.server.router.bounce(stanza, new StanzaError('item-not-found', 'the room was destroyed'));
        } else {
          this.enter(stanza, from, nick, nickAssigned, request);
        }
      } catch (e) {
        this.fail(stanza, e);
      }
      done();
    }));
  }

  /** The user enters (checks passed, records committed): state, self-presence, then what follows a join. */
  private enter(stanza: Element, from: Jid, nick: string, nickAssigned: boolean, request: JoinRequest | null): void {
    const full = from.toString();
    const bare = from.bareString();
    const creating = this.occupants.size === 0 && this.isNew;
    let occ = this.occupants.get(nick);
    const statuses: number[] = [];
    if (creating) statuses.push(STATUS.roomCreated);
    if (nickAssigned) statuses.push(STATUS.nickAssigned);
    if (!occ) {
      occ = new Occupant(nick, bare, this.defaultRole(this.affiliationOf(bare), bare), this.occupantIdFor(bare));
      this.occupants.set(nick, occ);
    }
    occ.sessions.set(full, cleanPresence(stanza));
    this.byRealJid.set(full, occ);
    this.isNew = false;
    if (creating) {
      this.affiliations.set(bare, 'owner');
      occ.role = 'moderator';
      this.hooks.after('room/created', { room: this, creator: bare, request });
      this.save();
    }
    sendJoin(this, occ, full, statuses, true);
    this.hooks.after('occupant/joined', { room: this, occupant: occ, full, history: request?.history, rejoin: false });
  }

  /** True while the room waits for a write before it takes its next stanza (see hold). */
  get holding(): boolean {
    return this.held !== null;
  }

  /**
   * Stops taking stanzas until start's work calls done: those that arrive meanwhile wait, in order.
   * For writes whose outcome decides the room's state (a recorded join); messages need only a slot.
   */
  private holdRoom(start: (done: () => void) => void): void {
    this.held = [];
    start(() => {
      const waiting = this.held ?? [];
      this.held = null;
      // A stanza below may hold the room again: the rest then wait behind it, still in order.
      for (const s of waiting) this.handle(s);
      if (this.changedOccupants.size > 0) this.host.occupantsChanged(this);
    });
  }

  // --- messages (§7.4, §7.5) -----------------------------------------------------------------------

  private onMessage(stanza: Element, from: Jid, nick: string): void {
    const type = stanza.attrs.type ?? 'normal';
    const full = from.toString();
    const occ = this.byRealJid.get(full);
    if (type === 'error') {
      // An occupant's client refused a message: Prosody #978 treats as leaving; XEP-0045 allows kicking.
      if (occ && nick === '') leave(this, occ, full, null, [STATUS.removedError]);
      return;
    }
    if (nick) return privateMessage(this, stanza, occ, nick, type);
    if (type === 'groupchat') {
      if (occ) return this.groupchat(stanza, occ, full);
      // Sent again by a client whose earlier session was an occupant and ended before the message was
      // acknowledged: the room has it, so it is answered as handled (no reflection: the sender is no
      // occupant now), not refused after being kept.
      const seen = this.seenBefore(this.resendKeys(stanza, from.bareString()));
      if (seen) return this.again(seen.accepted, stanza, full, true);
      throw new MucProtocolError('not-acceptable', 'only occupants may send messages to the room');
    }
    if (this.hooks.decide('message/normal', { room: this, stanza, from, occupant: occ })) return;
    throw new MucProtocolError('bad-request', 'messages to the room must be groupchat');
  }

  private groupchat(stanza: Element, occ: Occupant, full: string): void {
    if (occ.role === 'visitor' || occ.role === 'none') throw new MucProtocolError('forbidden', 'you have no voice in this room');
    const subject = stanza.getChild('subject');
    const body = stanza.getChild('body');
    const out = new Element('message', { from: `${this.jid}/${occ.nick}`, type: 'groupchat' });
    if (stanza.attrs.id !== undefined) out.attrs.id = stanza.attrs.id;
    if (stanza.attrs['xml:lang'] !== undefined) out.attrs['xml:lang'] = stanza.attrs['xml:lang'];
    for (const c of stanza.children) {
      if (typeof c === 'string') continue;
      // Forged room-assigned ids and occupant ids are dropped (XEP-0359 §3, XEP-0421 §4).
      if (c.name === 'stanza-id' && c.ns === NS.sid && c.attrs.by === this.jid) continue;
      if (c.ns === MUC_NS.occupantId || c.ns === MUC_NS.user) continue;
      out.children.push(c);
    }
    // Sent again (a client after a lost connection, a node after losing the owner's confirmation):
    // answered as the first was, never archived or broadcast twice.
    const known = this.resendKeys(stanza, occ.bare);
    const seen = this.seenBefore(known);
    if (seen) return this.again(seen.accepted, stanza, full, seen.byNode);
    const { proposed, byOrigin } = known;
    // One event object serves the message's events (no allocation per event on the hot path).
    const stamp = stampFor(proposed !== undefined ? this.host.proposedStamp?.(stanza) : undefined);
    const subjectChange = subject !== undefined && !body;
    const ev: CommittedMessage = {
      room: this, occupant: occ, stanza, subject, body, out, xml: '', stamp, subjectChange, stanzaId: '', entry: null, compliance: NO_RECORDS,
    };
    this.hooks.check('message/pre-groupchat', ev);
    occ.promote(full);
    this.hooks.build('message/build', ev);
    const recipients = this.sessions();
    if (subjectChange) this.subject = { text: subject.text(), nick: occ.nick, stamp };
    if (body === undefined && subject === undefined && this.hooks.decide('message/keep', ev) !== true) {
      this.send(recipients, out.toString(), 'message');
      return;
    }
    const stanzaId = ev.stanzaId = proposed ?? randomUUID();
    ev.entry = {
      archive: this.jid, stanzaId, stamp, fromJid: `${this.jid}/${occ.nick}`, realJid: occ.bare,
      body: body ? body.text() : null, stanza: '',
    };
    ev.compliance = [];
    this.hooks.build('message/persist', ev);
    const entry = ev.entry;
    if (entry) out.c('stanza-id', { xmlns: NS.sid, id: stanzaId, by: this.jid });
    const xml = ev.xml = out.toString();
    const keys = [idKey(stanzaId), byOrigin];
    if (!entry && ev.compliance.length === 0) {
      // Nothing to write (history off, no capture): delivered in the room's order, at once.
      this.recent.add(keys, { xml, waiters: [] });
      this.send(recipients, xml, 'message');
      if (subjectChange) this.save();
      return;
    }
    if (entry) entry.stanza = xml;
    const accepting: Accepted = { xml: null, waiters: [] };
    this.recent.add(keys, accepting);
    // Handled (for the sender's XEP-0198 count, or the forwarding node's confirmation) once committed.
    const handled = hold(stanza);
    // Written before anyone sees it; later output waits behind this slot.
    const slot = this.slot();
    const accepted = performance.now();
    this.host.writer.writeWith(entry, ev.compliance.length > 0 ? ev.compliance : null, (err) => {
      if (err && committedByOtherHolder(err, proposed)) {
        // Sent again by a node, and already in the archive: a duplicate, answered as a success.
        this.host.duplicate();
        accepting.xml = xml;
        this.release(slot, () => {
          for (const w of accepting.waiters) w(true);
          accepting.waiters = [];
          handled?.();
        });
        return;
      }
      if (err) {
        this.server.log.error('muc: message write failed; message refused', { err, room: this.jid });
        this.recent.forget(keys);
        this.release(slot, () => {
          this.fail(stanza, new StanzaError('internal-server-error', 'the message could not be stored'));
          for (const w of accepting.waiters) w(false);
          handled?.();
        });
        return;
      }
      this.host.committed((performance.now() - accepted) / 1000);
      accepting.xml = xml;
      this.release(slot, () => {
        // A subject change is not history: a subject without a body ends a client's join (§7.2.15).
        if (subjectChange) this.save();
        if (entry) this.hooks.after('message/committed', ev);
        for (const r of recipients) this.deliver(r, xml, 'message');
        for (const w of accepting.waiters) w(true);
        accepting.waiters = [];
        handled?.();
      });
    });
  }

  /**
   * A message the room already accepted came again. Resent by a node (same proposed id): the first
   * one's fan-out stands, nothing is sent. Resent by the client (same origin-id): its sending session
   * gets the reflection again, as it may have missed it. Either way it is handled once the first is
   * committed; if that commit fails, this one is refused as the first was.
   */
  /** The keys a message is known by: the id a node proposed for it, its sender's origin-id (XEP-0359). */
  private resendKeys(stanza: Element, bare: string): { proposed: string | undefined; byId: string | null; byOrigin: string | null } {
    const originId = stanza.getChild('origin-id', NS.sid)?.attrs.id;
    const proposed = this.host.proposedId(stanza);
    return { proposed, byId: proposed ? idKey(proposed) : null, byOrigin: originId ? originKey(bare, originId) : null };
  }

  /** The room's answer to this message when it was sent before (by a node when byNode), else null. */
  private seenBefore({ byId, byOrigin }: { byId: string | null; byOrigin: string | null }): { accepted: Accepted; byNode: boolean } | null {
    const byNode = this.recent.find(byId);
    const accepted = byNode ?? this.recent.find(byOrigin);
    return accepted ? { accepted, byNode: byNode !== undefined } : null;
  }

  private again(seen: Accepted, stanza: Element, full: string, byNode: boolean): void {
    this.host.duplicate();
    const reflect = (xml: string) => { if (!byNode) this.emit(() => this.deliver(full, xml, 'message')); };
    if (seen.xml !== null) return reflect(seen.xml);
    const handled = hold(stanza);
    seen.waiters.push((committed) => {
      if (committed) reflect(seen.xml!);
      else this.fail(stanza, new StanzaError('internal-server-error', 'the message could not be stored'));
      handled?.();
    });
  }

  // --- IQ ------------------------------------------------------------------------------------------

  private onIq(stanza: Element, from: Jid, nick: string): void {
    const type = stanza.attrs.type;
    if (nick) return occupantIq(this, stanza, from, nick);
    if (type === 'result' || type === 'error') return;
    const payload = stanza.elements()[0];
    if (!payload) throw new StanzaError('bad-request');
    const handler = this.hooks.iqHandler(type ?? '', payload.ns);
    if (!handler) throw new StanzaError('service-unavailable');
    let answered = false;
    handler({
      room: this, stanza, payload, from, occupant: this.byRealJid.get(from.toString()),
      reply: (el) => {
        if (answered) return undefined;
        answered = true;
        const r = new Element('iq', { type: 'result', id: stanza.attrs.id ?? '', from: this.jid, to: from.toString() });
        if (el) r.append(el);
        this.server.router.route(r);
        return undefined;
      },
      fail: (e) => {
        if (answered) return undefined;
        answered = true;
        this.fail(stanza, e);
        return undefined;
      },
    });
  }

  // --- changes by moderators, admins and owners (§8, §9, §10) --------------------------------------

  /** The occupant's current presence to everyone (self-presence with 110 to its own sessions). */
  broadcastPresence(occ: Occupant, opts: { statuses?: number[]; item?: Partial<MucUserItem> } = {}): void {
    broadcastPresence(this, occ, opts);
  }

  /** Removes every session of an occupant (kick, ban, membership loss), telling everyone why. */
  remove(occ: Occupant, statuses: number[], actor: Occupant | null, reason: string | undefined): void {
    removeOccupant(this, occ, statuses, actor, reason);
  }

  setRole(target: Occupant, role: Role, actor: Occupant | null, reason: string | undefined): void {
    target.role = role;
    const item: Partial<MucUserItem> = {};
    if (actor) item.actor = { nick: actor.nick, jid: actor.primary };
    if (reason !== undefined) item.reason = reason;
    this.broadcastPresence(target, { item });
  }

  /** Changes a stored affiliation and tells the room; occupants whose new role is 'none' leave. */
  setAffiliation(bare: string, affiliation: Affiliation, actor: Occupant | null, reason: string | undefined): void {
    setAffiliation(this, bare, affiliation, actor, reason);
  }

  /** Reserves a nick; someone else using it in the room has to leave (as Prosody does). */
  reserveNick(bare: string, nick: string): void {
    reserveNick(this, bare, nick);
  }

  /** §10.9: everyone leaves with the reason and alternate venue; the room is gone. */
  destroy(venue: string | undefined, reason: string | undefined, password: string | undefined): void {
    const out: Deliveries = [];
    for (const occ of this.occupants.values()) {
      for (const full of occ.sessions.keys()) {
        const p = new Element('presence', { from: `${this.jid}/${occ.nick}`, type: 'unavailable' });
        p.append(mucUserX({
          items: [{ affiliation: this.affiliationOf(occ.bare), role: 'none', jid: full }],
          statuses: [STATUS.selfPresence], destroy: { jid: venue, reason, password },
        }));
        out.push([full, p.toString()]);
      }
    }
    const gone = [...this.occupants.values()];
    this.occupants.clear();
    this.byRealJid.clear();
    this.sendAll(out);
    this.destroyed = true;
    // Everyone left with the room: each occupant's departure, as when it leaves on its own.
    for (const occ of gone) this.hooks.after('occupant/left', { room: this, occupant: occ, full: [...occ.sessions.keys()].at(-1) ?? occ.primary });
    this.hooks.after('room/destroyed', { room: this });
    this.host.destroyed(this, true);
  }
}
