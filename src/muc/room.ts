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
  MUC_NS, STATUS, MucProtocolError, parseJoin, mucUserX, prepareNick, type Affiliation, type Role, type MucUserItem,
} from '../../protocol/muc.js';
import type { RoomRecord, RoomAffiliation, RoomSubject } from '../../storage/types.js';
import type { Server } from '../context.js';
import type { ArchiveWriter } from '../archive-writer.js';
import type { RoomHooks } from './events.js';
import type { RoomConfig } from './option.js';
import { Outbox, type OutSlot } from './outbox.js';
import { Occupant, cleanPresence, kickedByError, snapshotOccupant, restoreOccupant } from './occupants.js';
import { occupantPresence, toOthers, type Deliveries, type PresenceOptions } from './presence.js';

export { Occupant };

/** What a room needs from the service that holds it. */
export interface RoomHost {
  readonly server: Server;
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
}

export const AFF_RANK: Record<Affiliation, number> = { outcast: 0, none: 1, member: 2, admin: 3, owner: 4 };

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
  /** IQs relayed between occupants: our id → original requester and id. */
  private readonly proxied = new Map<string, { from: string; id: string; to: string }>();
  private destroyed = false;

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

  get server(): Server {
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

  defaultRole(affiliation: Affiliation): Role {
    if (affiliation === 'owner' || affiliation === 'admin') return 'moderator';
    if (affiliation === 'outcast') return 'none';
    return this.hooks.decide('occupant/default-role', { room: this, affiliation }) ?? 'participant';
  }

  /** May viewer (undefined: every occupant) see real JIDs? */
  seesJids(viewer: Occupant | undefined): boolean {
    return viewer?.role === 'moderator' || this.hooks.decide('occupant/sees-jids', { room: this, viewer }) === true;
  }

  private broadcasts(role: Role): boolean {
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

  private sendAll(out: Deliveries): void {
    this.emit(() => { for (const [to, xml] of out) this.deliver(to, xml, 'presence'); });
  }

  presenceOf(occ: Occupant, opts: PresenceOptions): string {
    return occupantPresence(this, occ, opts);
  }

  /** Answers a stanza with an error from the room. */
  fail(stanza: Element, e: unknown): void {
    if (!(e instanceof StanzaError)) this.server.log.error('muc: stanza failed', { err: e, room: this.jid });
    const reply = errorReply(stanza, e instanceof StanzaError ? e : new StanzaError('internal-server-error'));
    if (!reply) return;
    // RFC 6120 §8.3.2: the entity that generated the error says so.
    const error = reply.getChild('error');
    if (error && e instanceof StanzaError) error.attrs = { by: this.jid, ...error.attrs };
    this.server.router.route(reply);
  }

  // --- entry point ---------------------------------------------------------------------------------

  handle(stanza: Element): void {
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

  private touch(occ: Occupant): void {
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
    for (const [occ, full] of gone) if (occ.sessions.has(full)) this.leave(occ, full, null, []);
    if (this.changedOccupants.size > 0) this.host.occupantsChanged(this);
  }

  /** Sessions that vanished with a node (no unavailable presence will come). */
  dropSessions(fulls: Set<string>): void {
    for (const full of fulls) {
      const occ = this.byRealJid.get(full);
      if (occ) this.leave(occ, full, null, []);
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
      if (occ) this.leave(occ, full, kickedByError(stanza), [STATUS.removedError]);
      return;
    }
    if (type === 'probe') return this.probe(occ, nick);
    if (type === 'unavailable') {
      if (occ) this.leave(occ, full, stanza, []);
      return;
    }
    if (type !== undefined) return; // subscription requests: the room does not take them
    if (!nick) throw new MucProtocolError('jid-malformed', 'a room nick is required');
    const prepared = prepareNick(nick);
    if (prepared === null || [...prepared].length > this.host.limits.maxNickLength) {
      throw new MucProtocolError('jid-malformed', 'invalid room nick');
    }
    if (occ) {
      if (occ.nick === prepared) this.updatePresence(occ, full, stanza);
      else this.changeNick(occ, full, prepared, stanza);
      return;
    }
    // The parsed address already carries the prepared nick: compare with what the client wrote (210).
    const to = stanza.attrs.to ?? '';
    const requested = to.includes('/') ? to.slice(to.indexOf('/') + 1) : nick;
    this.join(stanza, from, prepared, prepared !== requested);
  }

  private join(stanza: Element, from: Jid, nick: string, nickAssigned: boolean): void {
    const full = from.toString();
    const bare = from.bareString();
    const request = parseJoin(stanza);
    const affiliation = this.affiliationOf(bare);
    const creating = this.occupants.size === 0 && this.isNew;
    const existing = this.occupants.get(nick);
    this.hooks.check('occupant/pre-join', { room: this, jid: from, bare, nick, affiliation, request, existing });

    let occ = existing;
    const statuses: number[] = [];
    if (creating) statuses.push(STATUS.roomCreated);
    if (nickAssigned) statuses.push(STATUS.nickAssigned);
    if (!occ) {
      occ = new Occupant(nick, bare, this.defaultRole(affiliation), this.occupantIdFor(bare));
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
    this.sendJoin(occ, full, statuses, true);
    this.hooks.after('occupant/joined', { room: this, occupant: occ, full, history: request?.history, rejoin: false });
  }

  /** The occupant list, the newcomer's presence to all, and its self-presence (history and subject follow). */
  private sendJoin(occ: Occupant, full: string, selfStatuses: number[], announce: boolean): void {
    this.touch(occ);
    const out: Deliveries = [];
    const withJid = this.seesJids(occ);
    for (const other of this.occupants.values()) {
      if (other !== occ && this.broadcasts(other.role)) out.push([full, this.presenceOf(other, { withJid })]);
    }
    this.hooks.build('occupant/roster', { room: this, occupant: occ, full, out });
    if (announce && this.broadcasts(occ.role)) {
      toOthers(this, occ, out, (j) => this.presenceOf(occ, { withJid: j }));
      // The occupant's other sessions see the new one too.
      let jids: string | undefined;
      for (const s of occ.sessions.keys()) if (s !== full) out.push([s, jids ??= this.presenceOf(occ, { withJid: true })]);
    }
    const statuses = [...selfStatuses];
    if (this.seesJids(undefined)) statuses.unshift(STATUS.nonAnonymous);
    statuses.push(STATUS.selfPresence);
    out.push([full, this.presenceOf(occ, { withJid: true, onlyJid: full, statuses })]);
    this.sendAll(out);
  }

  private updatePresence(occ: Occupant, full: string, stanza: Element): void {
    const request = parseJoin(stanza);
    // Re-sent join (a client that lost track): give it the room again (as Prosody does).
    occ.sessions.delete(full);
    occ.sessions.set(full, cleanPresence(stanza));
    if (request) {
      this.sendJoin(occ, full, [], false);
      this.hooks.after('occupant/joined', { room: this, occupant: occ, full, history: request.history, rejoin: true });
      return;
    }
    this.broadcastPresence(occ, { selfFull: full });
  }

  /** The occupant's current presence to everyone (self-presence with 110 to its own sessions). */
  broadcastPresence(occ: Occupant, opts: { selfFull?: string; statuses?: number[]; item?: Partial<MucUserItem> } = {}): void {
    this.touch(occ);
    const statuses = opts.statuses ?? [];
    // The occupant learns who changed its role or affiliation by nick only (as Prosody sends it).
    const self = this.presenceOf(occ, { withJid: true, statuses: [...statuses, STATUS.selfPresence], item: opts.item, actorJid: false });
    const out: Deliveries = [];
    for (const s of occ.sessions.keys()) out.push([s, self]);
    if (this.broadcasts(occ.role)) toOthers(this, occ, out, (withJid) => this.presenceOf(occ, { withJid, statuses, item: opts.item }));
    this.sendAll(out);
  }

  private changeNick(occ: Occupant, full: string, nick: string, stanza: Element): void {
    const taken = this.occupants.get(nick);
    if (taken && taken.bare !== occ.bare) throw new MucProtocolError('conflict', 'that nick is taken');
    this.hooks.check('occupant/pre-change', { room: this, occupant: occ, nick });
    if (taken) throw new MucProtocolError('not-acceptable', 'another of your sessions uses that nick');
    // §7.6: unavailable with 303 and the new nick, then available under the new nick.
    const unavailable = (withJid: boolean, self: boolean) => this.presenceOf(occ, {
      withJid, type: 'unavailable', item: { nick, role: occ.role }, base: new Element('presence'),
      statuses: self ? [STATUS.nickChanged, STATUS.selfPresence] : [STATUS.nickChanged],
    });
    const out: Deliveries = [];
    const self = unavailable(true, true);
    for (const s of occ.sessions.keys()) out.push([s, self]);
    if (this.broadcasts(occ.role)) toOthers(this, occ, out, (withJid) => unavailable(withJid, false));
    this.sendAll(out);
    this.touch(occ);
    this.occupants.delete(occ.nick);
    occ.nick = nick;
    this.occupants.set(nick, occ);
    occ.sessions.delete(full);
    occ.sessions.set(full, cleanPresence(stanza));
    this.broadcastPresence(occ, { statuses: [] });
  }

  /** One session leaves; the occupant leaves with its last session. */
  private leave(occ: Occupant, full: string, stanza: Element | null, statuses: number[], item?: Partial<MucUserItem>): void {
    const base = stanza ? cleanPresence(stanza) : new Element('presence');
    this.touch(occ);
    occ.sessions.delete(full);
    this.byRealJid.delete(full);
    const self = this.presenceOf(occ, { withJid: true, onlyJid: full, type: 'unavailable', base, statuses: [...statuses, STATUS.selfPresence], item, actorJid: this.seesJids(occ) });
    if (occ.sessions.size > 0) {
      // Others still see the occupant, now through its remaining sessions.
      this.emit(() => this.deliver(full, self, 'presence'));
      this.broadcastPresence(occ, {});
      return;
    }
    this.occupants.delete(occ.nick);
    const out: Deliveries = [[full, self]];
    if (this.broadcasts(occ.role)) {
      toOthers(this, occ, out, (withJid) => this.presenceOf(occ, { withJid, onlyJid: withJid ? full : undefined, type: 'unavailable', base, statuses, item }));
    }
    this.sendAll(out);
    this.hooks.after('occupant/left', { room: this, occupant: occ, full });
    if (this.occupants.size === 0) this.host.emptied(this);
  }

  /** Removes every session of an occupant (kick, ban, membership loss), telling everyone why. */
  remove(occ: Occupant, statuses: number[], actor: Occupant | null, reason: string | undefined): void {
    const item: Partial<MucUserItem> = {};
    if (actor) item.actor = { nick: actor.nick, jid: actor.primary };
    if (reason !== undefined) item.reason = reason;
    const sessions = [...occ.sessions.keys()];
    for (let i = 0; i < sessions.length; i++) {
      const full = sessions[i]!;
      if (i < sessions.length - 1) {
        occ.sessions.delete(full);
        this.byRealJid.delete(full);
        const self = this.presenceOf(occ, { withJid: true, onlyJid: full, type: 'unavailable', base: new Element('presence'), statuses: [...statuses, STATUS.selfPresence], item, actorJid: this.seesJids(occ) });
        this.emit(() => this.deliver(full, self, 'presence'));
      } else {
        this.leave(occ, full, null, statuses, item);
      }
    }
  }

  /** Presence probe to an occupant JID (as Prosody answers it): the occupant's current presence. */
  private probe(prober: Occupant | undefined, nick: string): void {
    if (!prober) throw new StanzaError('not-acceptable', 'only occupants may probe', 'cancel');
    const target = this.occupants.get(nick);
    const full = prober.primary;
    if (target) {
      this.send([full], this.presenceOf(target, { withJid: this.seesJids(prober) }), 'presence');
      return;
    }
    const bare = this.nickReservedFor(nick);
    if (!bare) return;
    const p = new Element('presence', { from: `${this.jid}/${nick}`, type: 'unavailable' });
    const item: MucUserItem = { nick, affiliation: this.affiliationOf(bare), role: 'none' };
    if (this.seesJids(prober)) item.jid = bare;
    p.append(mucUserX({ items: [item] }));
    this.send([full], p.toString(), 'presence');
  }

  // --- messages (§7.4, §7.5) -----------------------------------------------------------------------

  private onMessage(stanza: Element, from: Jid, nick: string): void {
    const type = stanza.attrs.type ?? 'normal';
    const full = from.toString();
    const occ = this.byRealJid.get(full);
    if (type === 'error') {
      // An occupant's client refused a message: Prosody #978 treats as leaving; XEP-0045 allows kicking.
      if (occ && nick === '') this.leave(occ, full, null, [STATUS.removedError]);
      return;
    }
    if (nick) return this.privateMessage(stanza, occ, nick, type);
    if (type === 'groupchat') {
      if (!occ) throw new MucProtocolError('not-acceptable', 'only occupants may send messages to the room');
      return this.groupchat(stanza, occ, full);
    }
    if (this.hooks.decide('message/normal', { room: this, stanza, from, occupant: occ })) return;
    throw new MucProtocolError('bad-request', 'messages to the room must be groupchat');
  }

  private groupchat(stanza: Element, occ: Occupant, full: string): void {
    if (occ.role === 'visitor' || occ.role === 'none') throw new MucProtocolError('forbidden', 'you have no voice in this room');
    const subject = stanza.getChild('subject');
    const body = stanza.getChild('body');
    this.hooks.check('message/pre-groupchat', { room: this, occupant: occ, stanza, subject, body });
    occ.promote(full);

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
    this.hooks.build('message/build', { room: this, occupant: occ, out });
    const recipients = this.sessions();
    const stamp = new Date();
    const subjectChange = subject !== undefined && !body;
    if (subjectChange) this.subject = { text: subject.text(), nick: occ.nick, stamp };
    if (body === undefined && subject === undefined) {
      this.send(recipients, out.toString(), 'message');
      return;
    }
    // Archived before anyone sees it; later output waits behind this slot.
    const stanzaId = randomUUID();
    out.c('stanza-id', { xmlns: NS.sid, id: stanzaId, by: this.jid });
    const xml = out.toString();
    const slot = this.slot();
    const accepted = performance.now();
    this.host.writer.write({
      archive: this.jid, stanzaId, stamp, fromJid: `${this.jid}/${occ.nick}`, realJid: occ.bare,
      body: body ? body.text() : null, stanza: xml,
    }, (err) => {
      if (err) {
        this.server.log.error('muc: archive write failed; message refused', { err, room: this.jid });
        this.release(slot, () => this.fail(stanza, new StanzaError('internal-server-error', 'the message could not be stored')));
        return;
      }
      this.host.committed((performance.now() - accepted) / 1000);
      this.release(slot, () => {
        // A subject change is not history: a subject without a body ends a client's join (§7.2.15).
        if (subjectChange) this.save();
        this.hooks.after('message/committed', { room: this, occupant: occ, xml, stamp, subjectChange });
        for (const r of recipients) this.deliver(r, xml, 'message');
      });
    });
  }

  private privateMessage(stanza: Element, occ: Occupant | undefined, nick: string, type: string): void {
    if (!occ) throw new MucProtocolError('not-acceptable', 'only occupants may send private messages');
    const target = this.occupants.get(nick);
    if (!target) throw new MucProtocolError('item-not-found', 'no such occupant');
    if (type === 'groupchat') throw new MucProtocolError('bad-request', 'groupchat messages go to the room');
    this.hooks.check('message/private', { room: this, from: occ, to: target, stanza });
    const out = new Element('message', { ...stanza.attrs, from: `${this.jid}/${occ.nick}` });
    delete out.attrs.to;
    for (const c of stanza.children) if (typeof c !== 'string' && c.ns !== MUC_NS.occupantId) out.children.push(c);
    // §7.5: the recipient can tell a private message through a room from a direct one.
    if (!out.getChild('x', MUC_NS.user)) out.c('x', { xmlns: MUC_NS.user });
    this.hooks.build('message/build', { room: this, occupant: occ, out });
    this.send([...target.sessions.keys()], out.toString(), 'message');
  }

  // --- IQ ------------------------------------------------------------------------------------------

  private onIq(stanza: Element, from: Jid, nick: string): void {
    const type = stanza.attrs.type;
    if (nick) return this.occupantIq(stanza, from, nick);
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

  /** IQs to an occupant JID: a feature may answer (self-ping), others are relayed to the occupant. */
  private occupantIq(stanza: Element, from: Jid, nick: string): void {
    const type = stanza.attrs.type;
    const sender = this.byRealJid.get(from.toString());
    if (type === 'result' || type === 'error') {
      const p = this.proxied.get(stanza.attrs.id ?? '');
      if (!p || p.to !== from.toString()) return;
      this.proxied.delete(stanza.attrs.id ?? '');
      const relay = new Element('iq', { ...stanza.attrs, id: p.id, from: `${this.jid}/${sender?.nick ?? nick}`, to: p.from });
      relay.children = stanza.children;
      this.server.router.route(relay);
      return;
    }
    if (!sender) throw new MucProtocolError('not-acceptable', 'you are not an occupant of this room');
    const target = this.occupants.get(nick);
    if (!target) throw new MucProtocolError('item-not-found', 'no such occupant');
    if (this.hooks.decide('iq/occupant', { room: this, stanza, payload: stanza.elements()[0], sender, target })) return;
    const to = target.primary;
    const id = randomBytes(8).toString('hex');
    this.proxied.set(id, { from: from.toString(), id: stanza.attrs.id ?? '', to });
    if (this.proxied.size > 1000) this.proxied.delete(this.proxied.keys().next().value as string);
    const relay = new Element('iq', { type: type ?? 'get', id, from: `${this.jid}/${sender.nick}`, to });
    relay.children = stanza.children;
    this.server.router.route(relay);
  }

  // --- changes by moderators, admins and owners (§8, §9, §10) --------------------------------------

  setRole(target: Occupant, role: Role, actor: Occupant | null, reason: string | undefined): void {
    target.role = role;
    const item: Partial<MucUserItem> = {};
    if (actor) item.actor = { nick: actor.nick, jid: actor.primary };
    if (reason !== undefined) item.reason = reason;
    this.broadcastPresence(target, { item });
  }

  setAffiliation(bare: string, affiliation: Affiliation, actor: Occupant | null, reason: string | undefined): void {
    if (affiliation === 'none') this.affiliations.delete(bare);
    else this.affiliations.set(bare, affiliation);
    this.save();
    const present = [...this.occupants.values()].filter((o) => o.bare === bare);
    if (present.length === 0) {
      // §9.3-style notice for someone not in the room, to those who may see real JIDs.
      const msg = new Element('message', { from: this.jid });
      msg.append(mucUserX({ items: [{ jid: bare, affiliation } as MucUserItem] }));
      delete msg.getChild('x', MUC_NS.user)!.getChild('item')!.attrs.role;
      this.send(this.sessions((o) => this.seesJids(o)), msg.toString(), 'message');
      return;
    }
    for (const occ of present) {
      const role = this.defaultRole(affiliation);
      if (role === 'none') {
        // Banned (301), or no longer allowed in, e.g. a members-only room (321).
        this.remove(occ, [affiliation === 'outcast' ? STATUS.banned : STATUS.removedAffiliationChange], actor, reason);
      } else {
        occ.role = role;
        const item: Partial<MucUserItem> = {};
        if (actor) item.actor = { nick: actor.nick, jid: actor.primary };
        if (reason !== undefined) item.reason = reason;
        this.broadcastPresence(occ, { item });
      }
    }
  }

  /** Reserves a nick; someone else using it in the room has to leave (as Prosody does). */
  reserveNick(bare: string, nick: string): void {
    this.nicks.set(bare, nick);
    const holder = this.occupants.get(nick);
    if (holder && holder.bare !== bare) this.remove(holder, [STATUS.kicked], null, 'This nickname is reserved');
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
    this.occupants.clear();
    this.byRealJid.clear();
    this.sendAll(out);
    this.destroyed = true;
    this.hooks.after('room/destroyed', { room: this });
    this.host.destroyed(this, true);
  }
}
