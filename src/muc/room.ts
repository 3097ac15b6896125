// One multi-user chat room (XEP-0045): occupants, roles and affiliations, presence and message
// fan-out, history, subject, and the admin and owner protocols. Room state changes synchronously
// as each stanza is handled; what the room sends goes through an ordered outbox, so a message waits
// for its archive commit without letting later presence overtake it, and every occupant sees one order.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Element, escapeAttr } from '../../protocol/xml.js';
import { parseStanzaString } from '../../protocol/xml-stream.js';
import { Jid, tryParseJid } from '../../protocol/jid.js';
import { StanzaError, errorReply } from '../../protocol/errors.js';
import { NS } from '../../protocol/namespaces.js';
import { parseForm, buildForm, formType, formValue, type DataForm, type FormField } from '../../protocol/forms.js';
import { formatDateTime } from '../../protocol/datetime.js';
import {
  MUC_NS, STATUS, MucProtocolError, parseJoin, mucUserX, parseInvites, parseAdminQuery, adminQuery,
  parseDestroy, prepareNick, type Affiliation, type Role, type MucUserItem, type HistoryRequest, type AdminItem,
} from '../../protocol/muc.js';
import { MAM_NS } from '../../protocol/mam.js';
import type { RoomRecord, RoomAffiliation, RoomSubject } from '../../storage/types.js';
import type { Server } from '../context.js';
import type { Hooks } from '../hooks.js';
import type { ArchiveWriter } from '../archive-writer.js';
import { ROOM_OPTIONS, LIST_FIELDS, optionForField, restoreConfig, defaultRoomConfig, MAX_HISTORY, type RoomConfig } from './options.js';
import { answerMamQuery, mamFormQuery } from '../mam-query.js';
import { handleCommandRequest } from '../commands/registry.js';
import { HAT_COMMANDS } from './hats.js';

export const SID_NS = 'urn:xmpp:sid:0';
export const DELAY_NS = 'urn:xmpp:delay';
export const HATS_NS = 'urn:xmpp:hats:0';
export const MODERATE_NS = 'urn:xmpp:message-moderate:1';
export const RETRACT_NS = 'urn:xmpp:message-retract:1';
export const MODERATE_NS_0 = 'urn:xmpp:message-moderate:0';
export const RETRACT_NS_0 = 'urn:xmpp:message-retract:0';
const FASTEN_NS = 'urn:xmpp:fasten:0';
const PING_NS = 'urn:xmpp:ping';
const REQUEST_FORM = 'http://jabber.org/protocol/muc#request';
const REGISTER_NS = 'jabber:iq:register';
const REGISTER_FORM = 'http://jabber.org/protocol/muc#register';
const ROOMCONFIG_FORM = 'http://jabber.org/protocol/muc#roomconfig';

/** Points where policy (e.g. persistent-chat categories) plugs into every room of a service. */
export interface RoomEvents {
  /** Someone asks to create a room; throw StanzaError (e.g. not-allowed) to refuse. */
  'room/create': { service: string; name: string; creator: Jid };
  /** An entry is about to be granted; throw StanzaError to refuse, or change the role. */
  'room/join': { room: Room; jid: Jid; nick: string; affiliation: Affiliation; role: Role };
  /** A groupchat message from an occupant, before it is archived; throw StanzaError to refuse it. */
  'room/message': { room: Room; occupant: Occupant; stanza: Element };
  /** The config form being sent to an owner; add fields to form.fields. */
  'room/config-form': { room: Room; form: DataForm };
  /** A submitted config form; read extra fields from form and throw StanzaError for bad values. */
  'room/config-submit': { room: Room; form: DataForm; config: RoomConfig };
  /** The room's disco#info answer, before it is sent. */
  'room/disco-info': { room: Room; query: Element };
}

/** What a room needs from the service that holds it. */
export interface RoomHost {
  readonly server: Server;
  readonly domain: string;
  readonly writer: ArchiveWriter;
  readonly events: Hooks<RoomEvents>;
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

export interface Hat { uri: string; title: string }

export class Occupant {
  /** Sessions (full real JIDs) under this nick, newest last, with each one's presence (cleaned). */
  readonly sessions = new Map<string, Element>();
  tokens: number;
  refilled = Date.now();
  constructor(
    public nick: string,
    readonly bare: string,
    public role: Role,
    readonly occupantId: string,
    burst: number,
  ) {
    this.tokens = burst;
  }
  /** The session whose presence stands for the occupant: the one that joined or spoke last. */
  get primary(): string {
    let last = '';
    for (const k of this.sessions.keys()) last = k;
    return last;
  }
  get presence(): Element {
    return this.sessions.get(this.primary)!;
  }
}

interface HistoryEntry {
  /** The stanza as broadcast, without 'to'. */
  xml: string;
  stamp: Date;
}

interface OutItem { ready: boolean; run: () => void }

/** Elements a client's presence carries that the room must not copy into an occupant's presence. */
function cleanPresence(p: Element): Element {
  const out = new Element('presence', {});
  for (const c of p.children) {
    if (typeof c === 'string') continue;
    if (c.ns === MUC_NS.muc || c.ns === MUC_NS.user || c.ns === MUC_NS.occupantId || c.ns === HATS_NS) continue;
    if (c.name === 'error') continue;
    out.children.push(c);
  }
  return out;
}

/** The unavailable presence of an occupant removed because its client answered with an error. */
function kickedByError(stanza: Element): Element {
  const error = stanza.getChild('error');
  const condition = error?.elements().find((e) => e.ns === NS.stanzaErrors && e.name !== 'text')?.name ?? 'undefined-condition';
  const text = error?.getChildText('text', NS.stanzaErrors);
  const p = new Element('presence', {});
  p.c('status').t(`Kicked: ${condition.replace(/-/g, ' ')}${text ? `: ${text}` : ''}`);
  return p;
}

/** Adds 'to' to a serialised stanza that has none: routing without re-serialising per recipient. */
function withTo(xml: string, name: string, to: string): string {
  return '<' + name + " to='" + escapeAttr(to) + "'" + xml.slice(name.length + 1);
}

const AFF_RANK: Record<Affiliation, number> = { outcast: 0, none: 1, member: 2, admin: 3, owner: 4 };

export class Room {
  readonly jid: string;
  config: RoomConfig;
  /** Bare JID → stored affiliation. */
  readonly affiliations = new Map<string, RoomAffiliation>();
  subject: RoomSubject | null;
  /** A new room stays locked until its owner configures it (§10.1). */
  locked = false;
  readonly createdAt: Date;
  readonly occupants = new Map<string, Occupant>();
  /** Full real JID → occupant. */
  readonly byRealJid = new Map<string, Occupant>();
  readonly hats = new Map<string, Hat[]>();
  /** Registered nicks (§7.10): bare JID → nick. */
  readonly nicks = new Map<string, string>();
  private history: HistoryEntry[] = [];
  private readonly outbox: OutItem[] = [];
  private readonly idSalt: string;
  /** IQs forwarded between occupants: our id → original requester and id. */
  private readonly proxied = new Map<string, { from: string; id: string; to: string }>();
  private destroyed = false;
  lastActive = Date.now();

  constructor(readonly host: RoomHost, readonly name: string, record: RoomRecord | null) {
    this.jid = `${name}@${host.domain}`;
    if (record) {
      this.config = restoreConfig(record.config);
      for (const [j, a] of Object.entries(record.affiliations)) this.affiliations.set(j, a);
      this.subject = record.subject;
      this.createdAt = record.createdAt;
      this.idSalt = typeof record.config.idSalt === 'string' ? record.config.idSalt : randomBytes(16).toString('hex');
      this.locked = record.config.locked === true;
      const nicks = record.config.nicks;
      if (nicks && typeof nicks === 'object') for (const [j, n] of Object.entries(nicks as Record<string, string>)) this.nicks.set(j, n);
      const hats = record.config.hats;
      if (hats && typeof hats === 'object') for (const [j, h] of Object.entries(hats as Record<string, Hat[]>)) this.hats.set(j, h);
    } else {
      this.config = defaultRoomConfig();
      this.subject = null;
      this.createdAt = new Date();
      this.idSalt = randomBytes(16).toString('hex');
    }
  }

  get server(): Server {
    return this.host.server;
  }

  toRecord(): RoomRecord {
    const hats: Record<string, Hat[]> = {};
    for (const [j, h] of this.hats) hats[j] = h;
    return {
      service: this.host.domain,
      name: this.name,
      config: { ...this.config, idSalt: this.idSalt, locked: this.locked, hats, nicks: Object.fromEntries(this.nicks) },
      affiliations: Object.fromEntries(this.affiliations),
      subject: this.subject,
      createdAt: this.createdAt,
      persistent: this.config.persistent,
    };
  }

  /** Fills the join-history cache from the archive (room loaded after a restart or by another node). */
  async loadHistory(): Promise<void> {
    const entries = await this.server.stores.archive.lastN(this.jid, MAX_HISTORY);
    // Subject changes (archived without a body) are not join history.
    this.history = entries.filter((e) => !e.retracted && e.body !== null).map((e) => ({ xml: e.stanza, stamp: e.stamp }));
  }

  // --- affiliations and roles ------------------------------------------------------------------

  affiliationOf(bare: string): Affiliation {
    if (this.server.isAdmin(bare)) return 'owner';
    return this.affiliations.get(bare) ?? 'none';
  }

  private defaultRole(aff: Affiliation): Role {
    if (aff === 'owner' || aff === 'admin') return 'moderator';
    if (aff === 'outcast') return 'none';
    if (aff === 'member') return 'participant';
    return this.config.moderated ? 'visitor' : 'participant';
  }

  private canSeeRealJids(occ: Occupant | undefined): boolean {
    return this.config.whois === 'anyone' || occ?.role === 'moderator';
  }

  occupantIdFor(bare: string): string {
    return createHash('sha256').update(this.idSalt).update('\0').update(bare).digest('base64');
  }

  get empty(): boolean {
    return this.occupants.size === 0;
  }

  // --- the outbox --------------------------------------------------------------------------------

  /** Runs now if nothing waits before it, else in turn. */
  private emit(run: () => void): void {
    if (this.outbox.length === 0) run();
    else this.outbox.push({ ready: true, run });
  }

  private emitLater(): OutItem {
    const item: OutItem = { ready: false, run: () => {} };
    this.outbox.push(item);
    return item;
  }

  private release(item: OutItem, run: () => void): void {
    item.run = run;
    item.ready = true;
    while (this.outbox.length > 0 && this.outbox[0]!.ready) {
      const next = this.outbox.shift()!;
      try {
        next.run();
      } catch (e) {
        this.server.log.error('muc outbox item failed', { err: e, room: this.jid });
      }
    }
  }

  /** Sends one serialised stanza (without 'to') to a real JID. */
  private deliver(full: string, xml: string, name: string): void {
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

  private deliverEl(full: string, stanza: Element): void {
    this.deliver(full, stanza.toString(), stanza.name);
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

  private readonly changedOccupants = new Set<string>();

  private touch(occ: Occupant): void {
    this.changedOccupants.add(occ.nick);
  }

  /** Occupants changed since the last call: nick → serialised occupant, or null when gone. */
  takeChangedOccupants(): [string, string | null][] {
    const out: [string, string | null][] = [];
    for (const nick of this.changedOccupants) {
      const occ = this.occupants.get(nick);
      out.push([nick, occ ? JSON.stringify({
        bare: occ.bare, role: occ.role, sessions: [...occ.sessions].map(([full, p]) => [full, p.toString()]),
      }) : null]);
    }
    this.changedOccupants.clear();
    return out;
  }

  /**
   * Takes over the occupants another node held (it died or let the room go). Sessions that no longer
   * exist anywhere leave, and the others are told.
   */
  restoreOccupants(state: Record<string, string>): void {
    const gone: [Occupant, string][] = [];
    for (const [nick, json] of Object.entries(state)) {
      let saved: { bare: string; role: Role; sessions: [string, string][] };
      try { saved = JSON.parse(json) as typeof saved; } catch { continue; }
      const occ = new Occupant(nick, saved.bare, saved.role, this.occupantIdFor(saved.bare), this.host.limits.messageBurst);
      for (const [full, xml] of saved.sessions) {
        const p = parseStanzaString(xml) ?? new Element('presence');
        occ.sessions.set(full, p);
        this.byRealJid.set(full, occ);
        if (!this.server.sessions.get(full)) gone.push([occ, full]);
      }
      if (occ.sessions.size > 0) this.occupants.set(nick, occ);
    }
    for (const [occ, full] of gone) if (occ.sessions.has(full)) this.leave(occ, full, null, []);
    if (this.changedOccupants.size > 0) this.host.occupantsChanged(this);
  }

  private fail(stanza: Element, e: unknown): void {
    if (e instanceof StanzaError) {
      const reply = errorReply(stanza, e);
      if (!reply) return;
      // RFC 6120 §8.3.2: the entity that generated the error says so.
      const error = reply.getChild('error');
      if (error) error.attrs = { by: this.jid, ...error.attrs };
      this.server.router.route(reply);
      return;
    }
    this.server.log.error('muc: stanza failed', { err: e, room: this.jid });
    const reply = errorReply(stanza, new StanzaError('internal-server-error'));
    if (reply) this.server.router.route(reply);
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
    if (type === 'probe') {
      this.probe(occ, nick);
      return;
    }
    if (type === 'unavailable') {
      if (occ) this.leave(occ, full, stanza, []);
      return;
    }
    if (type !== undefined) return; // subscription requests and probes: the room does not take them
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
    if (this.locked && affiliation !== 'owner') throw new StanzaError('item-not-found', 'the room is locked until its owner configures it');
    const existing = this.occupants.get(nick);
    if (existing && existing.bare !== bare) throw new MucProtocolError('conflict', 'that nick is taken');
    if (!existing) {
      if (affiliation === 'outcast') throw new MucProtocolError('forbidden', 'you are banned from this room');
      if (this.config.membersOnly && AFF_RANK[affiliation] < AFF_RANK.member) {
        throw new MucProtocolError('registration-required', 'this room is members-only');
      }
      const reserved = this.nickReservedFor(nick);
      if (reserved && reserved !== bare) throw new MucProtocolError('conflict', 'that nick is reserved');
      if (this.config.maxUsers > 0 && this.occupants.size >= this.config.maxUsers && AFF_RANK[affiliation] < AFF_RANK.admin) {
        throw new MucProtocolError('service-unavailable', 'the room is full');
      }
    }
    if (this.config.password && (request?.password ?? '') !== this.config.password && !this.server.isAdmin(bare)) {
      throw new MucProtocolError('not-authorized', 'a password is required');
    }
    const ev = { room: this, jid: from, nick, affiliation, role: this.defaultRole(affiliation) };
    void this.host.events.fire('room/join', ev);

    let occ = existing;
    const statuses: number[] = [];
    if (creating) statuses.push(STATUS.roomCreated);
    if (nickAssigned) statuses.push(STATUS.nickAssigned);
    if (!occ) {
      occ = new Occupant(nick, bare, ev.role, this.occupantIdFor(bare), this.host.limits.messageBurst);
      this.occupants.set(nick, occ);
    }
    occ.sessions.set(full, cleanPresence(stanza));
    this.byRealJid.set(full, occ);
    this.isNew = false;
    if (creating) {
      // §10.1.2: a room created with the MUC extension waits for its owner's configuration; a
      // groupchat 1.0 join (no extension) creates an instant room.
      this.locked = request !== null;
      this.affiliations.set(bare, 'owner');
      occ.role = 'moderator';
      this.host.save(this);
    }
    this.sendJoin(occ, full, statuses, request?.history, true);
  }

  /** True until the first occupant has joined a room that did not exist before. */
  isNew = false;

  /** The occupant list, the newcomer's presence to all, its self-presence, history and subject. */
  private sendJoin(occ: Occupant, full: string, selfStatuses: number[], history: HistoryRequest | undefined, announce: boolean): void {
    this.touch(occ);
    const out: [string, string][] = [];
    const viewer = occ;
    const broadcastSelf = this.config.presenceBroadcast.includes(occ.role);
    for (const other of this.occupants.values()) {
      if (other === occ) continue;
      if (this.config.presenceBroadcast.includes(other.role)) out.push([full, this.occupantPresence(other, { withJid: this.canSeeRealJids(viewer) })]);
    }
    if (this.config.presenceBroadcast.includes('none')) {
      // Affiliated users who are not in the room, as unavailable (under their reserved nick; in a
      // semi-anonymous room those without one would give nothing away but their JID, so they are left out).
      const present = new Set([...this.occupants.values()].map((o) => o.bare));
      for (const [bare, affiliation] of this.affiliations) {
        if (present.has(bare) || affiliation === 'outcast') continue;
        const nick = this.nicks.get(bare);
        const withJid = this.canSeeRealJids(viewer);
        if (!nick && !withJid) continue;
        const p = new Element('presence', { from: nick ? `${this.jid}/${nick}` : this.jid, type: 'unavailable' });
        const item: MucUserItem = { affiliation, role: 'none' };
        if (nick) item.nick = nick;
        if (withJid) item.jid = bare;
        p.append(mucUserX({ items: [item] }));
        out.push([full, p.toString()]);
      }
    }
    if (announce && broadcastSelf) {
      const plain = this.occupantPresence(occ, { withJid: false });
      const jids = this.occupantPresence(occ, { withJid: true });
      for (const other of this.occupants.values()) {
        if (other === occ) continue;
        const xml = this.canSeeRealJids(other) ? jids : plain;
        for (const s of other.sessions.keys()) out.push([s, xml]);
      }
      // The occupant's other sessions see the new one too.
      for (const s of occ.sessions.keys()) if (s !== full) out.push([s, jids]);
    }
    const statuses = [...selfStatuses];
    if (this.config.whois === 'anyone') statuses.unshift(STATUS.nonAnonymous);
    statuses.push(STATUS.selfPresence);
    out.push([full, this.occupantPresence(occ, { withJid: true, onlyJid: full, statuses })]);
    const subject = this.subjectXml();
    this.emit(() => {
      for (const [to, xml] of out) this.deliver(to, xml, 'presence');
      for (const h of this.historyFor(history)) this.deliver(full, h, 'message');
      this.deliver(full, subject, 'message');
    });
  }

  private subjectXml(): string {
    const m = new Element('message', { from: this.subject?.nick ? `${this.jid}/${this.subject.nick}` : this.jid, type: 'groupchat' });
    const s = m.c('subject');
    if (this.subject?.text) s.t(this.subject.text);
    if (this.subject?.text) m.c('delay', { xmlns: DELAY_NS, from: this.jid, stamp: formatDateTime(this.subject.stamp) });
    return m.toString();
  }

  /** History for a joiner (§7.2.14), oldest first, each with a delay stamp. */
  private historyFor(req: HistoryRequest | undefined): string[] {
    let n = Math.min(this.config.historyLength, this.history.length);
    if (req?.maxstanzas !== undefined) n = Math.min(n, req.maxstanzas);
    if (n === 0) return [];
    let since = req?.since?.getTime() ?? -Infinity;
    if (req?.seconds !== undefined) since = Math.max(since, Date.now() - req.seconds * 1000);
    const out: string[] = [];
    let chars = 0;
    for (let i = this.history.length - 1; i >= 0 && out.length < n; i--) {
      const h = this.history[i]!;
      if (h.stamp.getTime() < since) break;
      const delay = `<delay xmlns='${DELAY_NS}' from='${escapeAttr(this.jid)}' stamp='${formatDateTime(h.stamp)}'/>`;
      const xml = h.xml.slice(0, h.xml.length - '</message>'.length) + delay + '</message>';
      if (req?.maxchars !== undefined) {
        chars += xml.length;
        if (chars > req.maxchars) break;
      }
      out.push(xml);
    }
    return out.reverse();
  }

  /** An occupant's presence as the room broadcasts it, serialised without 'to'. */
  private occupantPresence(occ: Occupant, opts: {
    withJid: boolean; onlyJid?: string; statuses?: number[]; type?: 'unavailable'; base?: Element;
    /** Show the actor's real JID (default: withJid); an occupant's own presence shows it only to those who may see real JIDs. */
    actorJid?: boolean;
    item?: Partial<MucUserItem>; extra?: Element[];
  }): string {
    const base = opts.base ?? occ.presence;
    const p = new Element('presence', { from: `${this.jid}/${occ.nick}` });
    if (opts.type) p.attrs.type = opts.type;
    for (const c of base.children) p.children.push(c);
    p.c('occupant-id', { xmlns: MUC_NS.occupantId, id: occ.occupantId });
    const hats = this.hats.get(occ.bare);
    if (hats && hats.length > 0 && !opts.type) {
      const h = p.c('hats', { xmlns: HATS_NS });
      for (const hat of hats) h.c('hat', { title: hat.title, uri: hat.uri });
    }
    const affiliation = this.affiliationOf(occ.bare);
    const items: MucUserItem[] = [];
    const jids = opts.onlyJid ? [opts.onlyJid] : opts.withJid ? [...occ.sessions.keys()].reverse() : [undefined];
    for (const jid of jids) {
      const item: MucUserItem = { affiliation, role: opts.type ? 'none' : occ.role, ...opts.item };
      if (jid && opts.withJid) item.jid = jid;
      if (item.actor?.jid && !(opts.actorJid ?? opts.withJid)) item.actor = { nick: item.actor.nick };
      items.push(item);
    }
    const x = mucUserX({ items, statuses: opts.statuses ?? [] });
    for (const e of opts.extra ?? []) x.append(e);
    p.append(x);
    return p.toString();
  }

  private updatePresence(occ: Occupant, full: string, stanza: Element): void {
    const request = parseJoin(stanza);
    // Re-sent join (a client that lost track): give it the room again (§7.2.x; as Prosody does).
    occ.sessions.delete(full);
    occ.sessions.set(full, cleanPresence(stanza));
    if (request) {
      this.sendJoin(occ, full, [], request.history, false);
      return;
    }
    this.broadcastPresence(occ, { selfFull: full });
  }

  /** The occupant's current presence to everyone (self-presence with 110 to its own sessions). */
  private broadcastPresence(occ: Occupant, opts: { selfFull?: string; statuses?: number[]; item?: Partial<MucUserItem> } = {}): void {
    this.touch(occ);
    const broadcast = this.config.presenceBroadcast.includes(occ.role);
    const plain = this.occupantPresence(occ, { withJid: false, statuses: opts.statuses, item: opts.item });
    const jids = this.occupantPresence(occ, { withJid: true, statuses: opts.statuses, item: opts.item });
    // The occupant learns who changed its role or affiliation by nick only (as Prosody sends it).
    const self = this.occupantPresence(occ, { withJid: true, statuses: [...(opts.statuses ?? []), STATUS.selfPresence], item: opts.item, actorJid: false });
    const out: [string, string][] = [];
    for (const other of this.occupants.values()) {
      if (other === occ) {
        for (const s of occ.sessions.keys()) out.push([s, self]);
        continue;
      }
      if (!broadcast) continue;
      const xml = this.canSeeRealJids(other) ? jids : plain;
      for (const s of other.sessions.keys()) out.push([s, xml]);
    }
    this.emit(() => { for (const [to, xml] of out) this.deliver(to, xml, 'presence'); });
  }

  private changeNick(occ: Occupant, full: string, nick: string, stanza: Element): void {
    const taken = this.occupants.get(nick);
    if (taken && taken.bare !== occ.bare) throw new MucProtocolError('conflict', 'that nick is taken');
    const reserved = this.nickReservedFor(nick);
    if (reserved && reserved !== occ.bare) throw new MucProtocolError('conflict', 'that nick is reserved');
    if (taken) throw new MucProtocolError('not-acceptable', 'another of your sessions uses that nick');
    // §7.6: unavailable with 303 and the new nick, then available under the new nick.
    const unavailable = (withJid: boolean, self: boolean) => this.occupantPresence(occ, {
      withJid, type: 'unavailable', item: { nick, role: occ.role }, base: new Element('presence'),
      statuses: self ? [STATUS.nickChanged, STATUS.selfPresence] : [STATUS.nickChanged],
    });
    const out: [string, string][] = [];
    const broadcast = this.config.presenceBroadcast.includes(occ.role);
    for (const other of this.occupants.values()) {
      if (other === occ) {
        const self = unavailable(true, true);
        for (const s of occ.sessions.keys()) out.push([s, self]);
      } else if (broadcast) {
        const xml = unavailable(this.canSeeRealJids(other), false);
        for (const s of other.sessions.keys()) out.push([s, xml]);
      }
    }
    this.emit(() => { for (const [to, xml] of out) this.deliver(to, xml, 'presence'); });
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
    if (occ.sessions.size > 0) {
      // Others still see the occupant, now through its remaining sessions.
      const self = this.occupantPresence(occ, { withJid: true, onlyJid: full, type: 'unavailable', base, statuses: [...statuses, STATUS.selfPresence], item, actorJid: this.canSeeRealJids(occ) });
      this.emit(() => this.deliver(full, self, 'presence'));
      this.broadcastPresence(occ, {});
      return;
    }
    this.occupants.delete(occ.nick);
    const broadcast = this.config.presenceBroadcast.includes(occ.role);
    const out: [string, string][] = [];
    const self = this.occupantPresence(occ, { withJid: true, onlyJid: full, type: 'unavailable', base, statuses: [...statuses, STATUS.selfPresence], item, actorJid: this.canSeeRealJids(occ) });
    out.push([full, self]);
    if (broadcast) {
      const plain = this.occupantPresence(occ, { withJid: false, onlyJid: undefined, type: 'unavailable', base, statuses, item });
      const jids = this.occupantPresence(occ, { withJid: true, onlyJid: full, type: 'unavailable', base, statuses, item });
      for (const other of this.occupants.values()) {
        const xml = this.canSeeRealJids(other) ? jids : plain;
        for (const s of other.sessions.keys()) out.push([s, xml]);
      }
    }
    this.emit(() => { for (const [to, xml] of out) this.deliver(to, xml, 'presence'); });
    if (this.occupants.size === 0) this.host.emptied(this);
  }

  /** Removes every session of an occupant (kick, ban, membership loss), telling everyone why. */
  private remove(occ: Occupant, statuses: number[], actor: Occupant | null, reason: string | undefined): void {
    const item: Partial<MucUserItem> = {};
    if (actor) item.actor = { nick: actor.nick, jid: actor.primary };
    if (reason !== undefined) item.reason = reason;
    const sessions = [...occ.sessions.keys()];
    for (let i = 0; i < sessions.length; i++) {
      const full = sessions[i]!;
      if (i < sessions.length - 1) {
        occ.sessions.delete(full);
        this.byRealJid.delete(full);
        const self = this.occupantPresence(occ, { withJid: true, onlyJid: full, type: 'unavailable', base: new Element('presence'), statuses: [...statuses, STATUS.selfPresence], item, actorJid: this.canSeeRealJids(occ) });
        this.emit(() => this.deliver(full, self, 'presence'));
      } else {
        this.leave(occ, full, null, statuses, item);
      }
    }
  }

  /** Sessions that vanished with a node (no unavailable presence will come). */
  dropSessions(fulls: Set<string>): void {
    for (const full of fulls) {
      const occ = this.byRealJid.get(full);
      if (occ) this.leave(occ, full, null, []);
    }
    if (this.changedOccupants.size > 0) this.host.occupantsChanged(this);
  }

  /** Bare JID that registered this nick (§7.10), if any. */
  private nickReservedFor(nick: string): string | null {
    for (const [bare, n] of this.nicks) if (n === nick) return bare;
    return null;
  }

  /** Presence probe to an occupant JID (as Prosody answers it): the occupant's current presence. */
  private probe(prober: Occupant | undefined, nick: string): void {
    if (!prober) throw new StanzaError('not-acceptable', 'only occupants may probe', 'cancel');
    const target = this.occupants.get(nick);
    const full = prober.primary;
    if (target) {
      const xml = this.occupantPresence(target, { withJid: this.canSeeRealJids(prober) });
      this.emit(() => this.deliver(full, xml, 'presence'));
      return;
    }
    const bare = this.nickReservedFor(nick);
    if (!bare) return;
    const p = new Element('presence', { from: `${this.jid}/${nick}`, type: 'unavailable' });
    const item: MucUserItem = { nick, affiliation: this.affiliationOf(bare), role: 'none' };
    if (this.canSeeRealJids(prober)) item.jid = bare;
    p.append(mucUserX({ items: [item] }));
    const xml = p.toString();
    this.emit(() => this.deliver(full, xml, 'presence'));
  }

  // --- messages (§7.4, §7.5, §7.8, §8.6) -----------------------------------------------------------

  private onMessage(stanza: Element, from: Jid, nick: string): void {
    const type = stanza.attrs.type ?? 'normal';
    const full = from.toString();
    const occ = this.byRealJid.get(full);
    if (type === 'error') {
      // An occupant's client refused a message: Prosody #978 treats as leaving; XEP-0045 allows kicking.
      if (occ && nick === '' ) this.leave(occ, full, null, [STATUS.removedError]);
      return;
    }
    if (nick) {
      this.privateMessage(stanza, occ, nick, type);
      return;
    }
    if (type === 'groupchat') {
      if (!occ) throw new MucProtocolError('not-acceptable', 'only occupants may send messages to the room');
      this.groupchat(stanza, occ, full);
      return;
    }
    const x = stanza.getChild('x', MUC_NS.user);
    if (x) {
      this.invitations(stanza, x, from, occ);
      return;
    }
    const formEl = stanza.getChild('x', NS.dataForms);
    if (formEl) {
      this.voiceRequest(formEl, occ);
      return;
    }
    throw new MucProtocolError('bad-request', 'messages to the room must be groupchat');
  }

  private takeToken(occ: Occupant): boolean {
    const { messagesPerSecond, messageBurst } = this.host.limits;
    const now = Date.now();
    occ.tokens = Math.min(messageBurst, occ.tokens + ((now - occ.refilled) / 1000) * messagesPerSecond);
    occ.refilled = now;
    if (occ.tokens < 1) return false;
    occ.tokens -= 1;
    return true;
  }

  private groupchat(stanza: Element, occ: Occupant, full: string): void {
    if (occ.role === 'visitor' || occ.role === 'none') throw new MucProtocolError('forbidden', 'you have no voice in this room');
    const subject = stanza.getChild('subject');
    const body = stanza.getChild('body');
    if (subject && !body) {
      if (!this.config.changeSubject && occ.role !== 'moderator') throw new MucProtocolError('forbidden', 'only moderators may change the subject');
    }
    if (!this.takeToken(occ)) throw new StanzaError('resource-constraint', 'you are sending too fast', 'wait');
    void this.host.events.fire('room/message', { room: this, occupant: occ, stanza });
    // The occupant's presence follows the session that spoke (multi-session).
    const p = occ.sessions.get(full);
    if (p) { occ.sessions.delete(full); occ.sessions.set(full, p); }

    const out = new Element('message', { from: `${this.jid}/${occ.nick}`, type: 'groupchat' });
    if (stanza.attrs.id !== undefined) out.attrs.id = stanza.attrs.id;
    if (stanza.attrs['xml:lang'] !== undefined) out.attrs['xml:lang'] = stanza.attrs['xml:lang'];
    for (const c of stanza.children) {
      if (typeof c === 'string') continue;
      // Forged room-assigned ids and occupant ids are dropped (XEP-0359 §3, XEP-0421 §4).
      if (c.name === 'stanza-id' && c.ns === SID_NS && c.attrs.by === this.jid) continue;
      if (c.ns === MUC_NS.occupantId || c.ns === MUC_NS.user) continue;
      out.children.push(c);
    }
    out.c('occupant-id', { xmlns: MUC_NS.occupantId, id: occ.occupantId });
    const recipients: string[] = [];
    for (const o of this.occupants.values()) for (const s of o.sessions.keys()) recipients.push(s);

    const stamp = new Date();
    if (subject && !body) this.subject = { text: subject.text(), nick: occ.nick, stamp };
    const archived = body !== undefined || subject !== undefined;
    if (!archived) {
      const xml = out.toString();
      this.emit(() => { for (const r of recipients) this.deliver(r, xml, 'message'); });
      return;
    }
    const stanzaId = randomUUID();
    out.c('stanza-id', { xmlns: SID_NS, id: stanzaId, by: this.jid });
    const xml = out.toString();
    const item = this.emitLater();
    const accepted = performance.now();
    this.host.writer.write({
      archive: this.jid, stanzaId, stamp, fromJid: `${this.jid}/${occ.nick}`, realJid: occ.bare,
      body: body ? body.text() : null, stanza: xml,
    }, (err) => {
      if (err) {
        this.server.log.error('muc: archive write failed; message refused', { err, room: this.jid });
        this.release(item, () => this.fail(stanza, new StanzaError('internal-server-error', 'the message could not be stored')));
        return;
      }
      this.host.committed((performance.now() - accepted) / 1000);
      this.release(item, () => {
        // A subject change is not history: a subject without a body ends a client's join (§7.2.15).
        if (subject && !body) this.host.save(this);
        else this.pushHistory({ xml, stamp });
        for (const r of recipients) this.deliver(r, xml, 'message');
      });
    });
  }

  private pushHistory(h: HistoryEntry): void {
    this.history.push(h);
    if (this.history.length > MAX_HISTORY + 100) this.history = this.history.slice(-MAX_HISTORY);
  }

  private privateMessage(stanza: Element, occ: Occupant | undefined, nick: string, type: string): void {
    if (!occ) throw new MucProtocolError('not-acceptable', 'only occupants may send private messages');
    const target = this.occupants.get(nick);
    if (!target) throw new MucProtocolError('item-not-found', 'no such occupant');
    if (type === 'groupchat') throw new MucProtocolError('bad-request', 'groupchat messages go to the room');
    const allowPm = this.config.allowPm;
    const allowed = allowPm === 'anyone' ? true
      : allowPm === 'participants' ? occ.role === 'participant' || occ.role === 'moderator'
        : allowPm === 'moderators' ? occ.role === 'moderator' : false;
    if (!allowed) throw new MucProtocolError('forbidden', 'private messages are not allowed here');
    const out = new Element('message', { ...stanza.attrs, from: `${this.jid}/${occ.nick}` });
    delete out.attrs.to;
    for (const c of stanza.children) if (typeof c !== 'string' && c.ns !== MUC_NS.occupantId) out.children.push(c);
    // §7.5: the recipient can tell a private message through a room from a direct one.
    if (!out.getChild('x', MUC_NS.user)) out.c('x', { xmlns: MUC_NS.user });
    out.c('occupant-id', { xmlns: MUC_NS.occupantId, id: occ.occupantId });
    const xml = out.toString();
    const targets = [...target.sessions.keys()];
    this.emit(() => { for (const t of targets) this.deliver(t, xml, 'message'); });
  }

  private invitations(stanza: Element, x: Element, from: Jid, occ: Occupant | undefined): void {
    const parsed = parseInvites(x);
    if (parsed.decline?.to) {
      // §7.8.2: the room relays a decline to the inviter, from the room; invitations name the inviter by
      // occupant JID, so a decline addressed to one goes to that occupant's sessions.
      const decline = new Element('message', { from: this.jid });
      decline.append(mucUserX({ decline: { from: from.bareString(), reason: parsed.decline.reason } }));
      const to = parsed.decline.to;
      const inviter = to.startsWith(`${this.jid}/`) ? this.occupants.get(to.slice(this.jid.length + 1)) : undefined;
      if (inviter) {
        const xml = decline.toString();
        const sessions = [...inviter.sessions.keys()];
        this.emit(() => { for (const s of sessions) this.deliver(s, xml, 'message'); });
      } else if (!to.startsWith(`${this.jid}/`)) {
        decline.attrs.to = to;
        this.emit(() => this.server.router.route(decline));
      }
      return;
    }
    if (parsed.invites.length === 0) throw new MucProtocolError('bad-request', 'nothing to do');
    if (!occ) throw new MucProtocolError('not-acceptable', 'only occupants may invite');
    const aff = this.affiliationOf(occ.bare);
    const privileged = AFF_RANK[aff] >= AFF_RANK.admin;
    if (this.config.membersOnly && !this.config.allowInvites && !privileged) {
      throw new MucProtocolError('forbidden', 'only admins may invite to this room');
    }
    for (const invite of parsed.invites) {
      if (!invite.to) continue;
      const to = tryParseJid(invite.to);
      if (!to) throw new MucProtocolError('jid-malformed', 'bad invitee');
      // §7.8.2: in a members-only room an invitation by someone allowed to invite makes the invitee a member.
      if (this.config.membersOnly && AFF_RANK[this.affiliationOf(to.bareString())] < AFF_RANK.member) {
        this.setAffiliation(to.bareString(), 'member', occ, undefined);
      }
      const msg = new Element('message', { from: this.jid, to: invite.to });
      if (stanza.attrs.id) msg.attrs.id = stanza.attrs.id;
      // §7.8.2 lets the room name the inviter by bare, full or occupant JID: the occupant JID keeps a
      // semi-anonymous room's real JIDs to itself (and is what Prosody sends).
      const inviter = `${this.jid}/${occ.nick}`;
      msg.append(mucUserX({
        invite: { from: inviter, reason: invite.reason ?? '', continue: invite.continue },
        password: this.config.password || undefined,
      }));
      const conf = msg.c('x', { xmlns: MUC_NS.conference, jid: this.jid });
      if (invite.reason) conf.attrs.reason = invite.reason;
      if (this.config.password) conf.attrs.password = this.config.password;
      msg.c('body').t(`${inviter} invited you to the room ${this.jid}${invite.reason ? `: ${invite.reason}` : ''}`);
      this.emit(() => this.server.router.route(msg));
    }
  }

  /** §8.6: a visitor asks for voice; moderators get the request and may approve it by submitting it. */
  private voiceRequest(formEl: Element, occ: Occupant | undefined): void {
    let form: DataForm;
    try { form = parseForm(formEl); } catch { throw new MucProtocolError('bad-request', 'malformed form'); }
    if (formType(form) !== REQUEST_FORM) throw new MucProtocolError('bad-request', 'unknown form');
    if (!occ) throw new MucProtocolError('not-acceptable', 'only occupants may request voice');
    if (occ.role === 'moderator' && form.type === 'submit' && formValue(form, 'muc#request_allow') !== undefined) {
      const nick = formValue(form, 'muc#roomnick');
      const target = nick ? this.occupants.get(nick) : undefined;
      if (!target) throw new MucProtocolError('item-not-found', 'no such occupant');
      const allow = formValue(form, 'muc#request_allow');
      if ((allow === '1' || allow === 'true') && target.role === 'visitor') this.setRole(target, 'participant', occ, undefined);
      return;
    }
    if (!this.config.voiceRequests) throw new MucProtocolError('forbidden', 'voice requests are disabled');
    if (occ.role !== 'visitor') return;
    const approval = buildForm({
      type: 'form', title: 'Voice request', fields: [
        { var: 'FORM_TYPE', type: 'hidden', values: [REQUEST_FORM] },
        { var: 'muc#role', type: 'list-single', label: 'Requested role', values: ['participant'] },
        { var: 'muc#jid', type: 'jid-single', label: 'User ID', values: [occ.primary] },
        { var: 'muc#roomnick', type: 'text-single', label: 'Room Nickname', values: [occ.nick] },
        { var: 'muc#request_allow', type: 'boolean', label: 'Grant voice to this person?', values: ['false'] },
      ],
    });
    const msg = new Element('message', { from: this.jid }).append(approval);
    const xml = msg.toString();
    const mods: string[] = [];
    for (const o of this.occupants.values()) if (o.role === 'moderator') mods.push(...o.sessions.keys());
    this.emit(() => { for (const m of mods) this.deliver(m, xml, 'message'); });
  }

  // --- IQ ------------------------------------------------------------------------------------------

  private onIq(stanza: Element, from: Jid, nick: string): void {
    const type = stanza.attrs.type;
    if (nick) {
      this.occupantIq(stanza, from, nick);
      return;
    }
    if (type === 'result' || type === 'error') return;
    const payload = stanza.elements()[0];
    if (!payload) throw new StanzaError('bad-request');
    const occ = this.byRealJid.get(from.toString());
    const reply = (el?: Element) => {
      const r = new Element('iq', { type: 'result', id: stanza.attrs.id ?? '', from: this.jid, to: from.toString() });
      if (el) r.append(el);
      this.server.router.route(r);
    };
    const ns = payload.ns;
    if (type === 'get' && ns === NS.discoInfo) {
      if (payload.attrs.node === 'x-roomuser-item') {
        // §7.12: the requester's registered nick.
        const q = new Element('query', { xmlns: NS.discoInfo, node: 'x-roomuser-item' });
        const nick = this.nicks.get(from.bareString());
        if (nick) q.c('identity', { category: 'conference', type: 'text', name: nick });
        reply(q);
        return;
      }
      if (payload.attrs.node) throw new StanzaError('item-not-found');
      reply(this.discoInfo());
      return;
    }
    if (ns === REGISTER_NS) {
      // Registration is for affiliated users (as Prosody does by default); others become members
      // through an admin, so an unaffiliated user cannot reserve a nick on their own.
      if (this.affiliationOf(from.bareString()) === 'none') throw new MucProtocolError('registration-required', 'only affiliated users may register');
      if (type === 'get') reply(this.registrationForm(from));
      else { this.register(payload, from); reply(); }
      return;
    }
    if (type === 'get' && ns === NS.discoItems) {
      const q = new Element('query', { xmlns: NS.discoItems });
      if (payload.attrs.node === NS.commands) {
        q.attrs.node = NS.commands;
        for (const node of Object.values(HAT_COMMANDS)) {
          if (this.affiliationOf(from.bareString()) === 'owner') q.c('item', { jid: this.jid, node, name: node.endsWith('don') ? 'Put a hat on a user' : 'Take a hat off a user' });
        }
      }
      reply(q);
      return;
    }
    if (type === 'set' && ns === NS.commands) {
      void handleCommandRequest(this.server, this.host.domain, payload, from, tryParseJid(this.jid)!).then(reply, (e) => this.fail(stanza, e));
      return;
    }
    if (ns === MUC_NS.admin) {
      if (type === 'get') reply(this.adminGet(payload, from, occ));
      else { this.adminSet(payload, from, occ); reply(); }
      return;
    }
    if (ns === MUC_NS.owner) {
      if (type === 'get') reply(this.ownerGet(from));
      else {
        let answered = false;
        this.ownerSet(payload, from, () => { answered = true; reply(); });
        if (!answered) reply();
      }
      return;
    }
    if (ns === MAM_NS) {
      this.mustReadArchive(from, occ);
      if (type === 'get') { reply(mamFormQuery()); return; }
      void answerMamQuery(this.server, { stanza, payload, from, to: tryParseJid(this.jid)!, session: null }, {
        archive: this.jid, realJids: this.canSeeRealJids(occ) || AFF_RANK[this.affiliationOf(from.bareString())] >= AFF_RANK.admin,
      }).then((fin) => {
        // The result follows the forwarded messages, which are routed from this room too.
        reply(fin);
      }, (e) => this.fail(stanza, e));
      return;
    }
    if (type === 'set' && (ns === MODERATE_NS || ns === FASTEN_NS)) {
      // Answered once the archive has the tombstone (result) or has no such message (error).
      this.moderate(stanza, payload, occ, () => reply());
      return;
    }
    if (type === 'get' && ns === PING_NS) {
      reply();
      return;
    }
    throw new StanzaError('service-unavailable');
  }

  /** IQs to an occupant JID: self-ping (XEP-0410) answered here, others relayed to the occupant (§7.5 style). */
  private occupantIq(stanza: Element, from: Jid, nick: string): void {
    const type = stanza.attrs.type;
    const sender = this.byRealJid.get(from.toString());
    if (type === 'result' || type === 'error') {
      const p = this.proxied.get(stanza.attrs.id ?? '');
      if (!p || p.to !== from.toString()) return;
      this.proxied.delete(stanza.attrs.id ?? '');
      const relay = new Element('iq', { ...stanza.attrs, id: p.id, from: `${this.jid}/${nick}`, to: p.from });
      relay.children = stanza.children;
      const origSender = this.byRealJid.get(from.toString());
      if (origSender) relay.attrs.from = `${this.jid}/${origSender.nick}`;
      this.server.router.route(relay);
      return;
    }
    if (!sender) throw new MucProtocolError('not-acceptable', 'you are not an occupant of this room');
    const target = this.occupants.get(nick);
    if (!target) throw new MucProtocolError('item-not-found', 'no such occupant');
    const payload = stanza.elements()[0];
    if (target === sender && payload?.is('ping', PING_NS)) {
      this.server.router.route(new Element('iq', { type: 'result', id: stanza.attrs.id ?? '', from: `${this.jid}/${nick}`, to: from.toString() }));
      return;
    }
    const to = target.primary;
    const id = randomBytes(8).toString('hex');
    this.proxied.set(id, { from: from.toString(), id: stanza.attrs.id ?? '', to });
    if (this.proxied.size > 1000) this.proxied.delete(this.proxied.keys().next().value as string);
    const relay = new Element('iq', { type: type ?? 'get', id, from: `${this.jid}/${sender.nick}`, to });
    relay.children = stanza.children;
    this.server.router.route(relay);
  }

  private mustReadArchive(from: Jid, occ: Occupant | undefined): void {
    const aff = this.affiliationOf(from.bareString());
    if (aff === 'outcast') throw new StanzaError('forbidden', 'you are banned from this room');
    if (this.config.membersOnly && AFF_RANK[aff] < AFF_RANK.member) throw new StanzaError('forbidden', 'the archive of a members-only room is for members');
    if (!this.config.public && !occ && AFF_RANK[aff] < AFF_RANK.member) throw new StanzaError('forbidden', 'the archive of a hidden room is for its members and occupants');
  }

  discoInfo(): Element {
    const c = this.config;
    const q = new Element('query', { xmlns: NS.discoInfo });
    q.c('identity', { category: 'conference', type: 'text', name: c.name || this.name });
    const features = [
      MUC_NS.muc, MUC_NS.user, MAM_NS, `${MAM_NS}#extended`, 'urn:xmpp:fulltext:0', SID_NS, MUC_NS.occupantId,
      MODERATE_NS, MODERATE_NS_0, HATS_NS, NS.commands, 'http://jabber.org/protocol/muc#self-ping-optimization', MUC_NS.request,
      c.public ? 'muc_public' : 'muc_hidden',
      c.membersOnly ? 'muc_membersonly' : 'muc_open',
      c.moderated ? 'muc_moderated' : 'muc_unmoderated',
      c.whois === 'anyone' ? 'muc_nonanonymous' : 'muc_semianonymous',
      c.password ? 'muc_passwordprotected' : 'muc_unsecured',
      c.persistent ? 'muc_persistent' : 'muc_temporary',
    ];
    for (const f of features) q.c('feature', { var: f });
    const fields: FormField[] = [
      { var: 'FORM_TYPE', type: 'hidden', values: ['http://jabber.org/protocol/muc#roominfo'] },
      { var: 'muc#roomconfig_roomname', type: 'text-single', label: 'Title', values: [c.name] },
      { var: 'muc#roominfo_description', type: 'text-single', label: 'Description', values: [c.description] },
      { var: 'muc#roominfo_occupants', type: 'text-single', label: 'Number of occupants', values: [String(this.occupants.size)] },
      { var: 'muc#roominfo_subject', type: 'text-single', label: 'Subject', values: [this.subject?.text ?? ''] },
      { var: 'muc#roominfo_subjectmod', type: 'boolean', label: 'Occupants may change the subject', values: [c.changeSubject ? '1' : '0'] },
      { var: 'muc#roomconfig_changesubject', type: 'boolean', label: 'Occupants may change the subject', values: [c.changeSubject ? '1' : '0'] },
      { var: 'muc#maxhistoryfetch', type: 'text-single', label: 'Maximum number of history messages returned by room', values: [String(c.historyLength)] },
      { var: 'muc#roominfo_lang', type: 'text-single', label: 'Language', values: [c.language] },
      { var: 'muc#roomconfig_allowinvites', type: 'boolean', label: 'Occupants may invite', values: [c.allowInvites ? '1' : '0'] },
      { var: 'muc#roomconfig_allowpm', type: 'list-single', label: 'Who may send private messages', values: [c.allowPm] },
    ];
    q.append(buildForm({ type: 'result', fields }));
    void this.host.events.fire('room/disco-info', { room: this, query: q });
    return q;
  }

  /** Reserves a nick; someone else using it in the room has to leave (as Prosody does). */
  private reserveNick(bare: string, nick: string): void {
    this.nicks.set(bare, nick);
    const holder = this.occupants.get(nick);
    if (holder && holder.bare !== bare) this.remove(holder, [STATUS.kicked], null, 'This nickname is reserved');
  }

  // --- registration (§7.10) ----------------------------------------------------------------------------

  private registrationForm(from: Jid): Element {
    const q = new Element('query', { xmlns: REGISTER_NS });
    if (this.affiliationOf(from.bareString()) === 'outcast') throw new MucProtocolError('forbidden', 'you are banned from this room');
    q.append(buildForm({
      type: 'form', fields: [
        { var: 'FORM_TYPE', type: 'hidden', values: [REGISTER_FORM] },
        { var: 'muc#register_roomnick', type: 'text-single', label: 'Nickname', required: true, values: [] },
      ],
    }));
    return q;
  }

  private register(payload: Element, from: Jid): void {
    const bare = from.bareString();
    const aff = this.affiliationOf(bare);
    if (payload.getChild('remove')) {
      if (!this.nicks.has(bare) && aff !== 'member') throw new MucProtocolError('item-not-found', 'you are not registered');
      this.nicks.delete(bare);
      if (aff === 'member') this.setAffiliation(bare, 'none', null, undefined);
      else this.host.save(this);
      return;
    }
    const formEl = payload.getChild('x', NS.dataForms);
    if (!formEl) throw new MucProtocolError('bad-request', 'expected the registration form');
    let form: DataForm;
    try { form = parseForm(formEl); } catch (e) { throw new MucProtocolError('bad-request', (e as Error).message); }
    if (form.type !== 'submit' || (formType(form) ?? REGISTER_FORM) !== REGISTER_FORM) throw new MucProtocolError('bad-request', 'expected the registration form');
    const raw = formValue(form, 'muc#register_roomnick');
    const nick = raw === undefined ? null : prepareNick(raw);
    if (!nick) throw new MucProtocolError('not-acceptable', 'a valid nickname is required');
    if (aff === 'outcast') throw new MucProtocolError('forbidden', 'you are banned from this room');
    if (this.config.membersOnly && AFF_RANK[aff] < AFF_RANK.member) throw new MucProtocolError('registration-required', 'only members may register in this room');
    const holder = this.nickReservedFor(nick);
    const inUse = this.occupants.get(nick);
    if ((holder && holder !== bare) || (inUse && inUse.bare !== bare)) throw new MucProtocolError('conflict', 'that nick is taken');
    this.reserveNick(bare, nick);
    if (aff === 'none') this.setAffiliation(bare, 'member', null, undefined);
    else {
      this.host.save(this);
      for (const o of this.occupants.values()) if (o.bare === bare) this.broadcastPresence(o, {});
    }
  }

  // --- admin (§8, §9) ------------------------------------------------------------------------------

  private adminGet(payload: Element, from: Jid, occ: Occupant | undefined): Element {
    const { items } = parseAdminQuery(payload);
    const want = items[0]!;
    const aff = this.affiliationOf(from.bareString());
    if (want.role !== undefined) {
      if (occ?.role !== 'moderator') throw new MucProtocolError('forbidden', 'only moderators may list roles');
      const out: AdminItem[] = [];
      for (const o of this.occupants.values()) {
        if (o.role === want.role) out.push({ role: o.role, nick: o.nick, affiliation: this.affiliationOf(o.bare), jid: o.bare });
      }
      return adminQuery(out);
    }
    const wanted = want.affiliation!;
    if (wanted === 'none') throw new MucProtocolError('bad-request', 'there is no list of unaffiliated users');
    const allowed = AFF_RANK[aff] >= AFF_RANK.admin
      // Prosody's policy, which its clients expect: in a non-anonymous room members see the member lists.
      || (AFF_RANK[aff] >= AFF_RANK.member && this.config.whois === 'anyone' && wanted !== 'outcast');
    if (!allowed) throw new MucProtocolError('forbidden', 'you may not see this list');
    const out: AdminItem[] = [];
    for (const [jid, a] of this.affiliations) {
      if (a !== wanted) continue;
      const item: AdminItem = { affiliation: a, jid };
      const nick = this.nicks.get(jid);
      if (nick) item.nick = nick;
      out.push(item);
    }
    return adminQuery(out);
  }

  private adminSet(payload: Element, from: Jid, occ: Occupant | undefined): void {
    const { items } = parseAdminQuery(payload);
    const actorAff = this.affiliationOf(from.bareString());
    // Check everything before changing anything: the request succeeds or fails as a whole.
    const plan: (() => void)[] = [];
    const owners = new Set([...this.affiliations].filter(([, a]) => a === 'owner').map(([j]) => j));
    for (const item of items) {
      if (item.role !== undefined) {
        if (!item.nick) throw new MucProtocolError('bad-request', 'a role change needs a nick');
        const target = this.occupants.get(item.nick);
        if (!target) throw new MucProtocolError('item-not-found', 'no such occupant');
        this.checkRoleChange(occ, actorAff, target, item.role);
        const role = item.role;
        plan.push(() => {
          if (role === 'none') this.remove(target, [STATUS.kicked], occ ?? null, item.reason);
          else this.setRole(target, role, occ ?? null, item.reason);
        });
      } else {
        let jid = item.jid;
        if (!jid && item.nick) jid = this.occupants.get(item.nick)?.bare;
        if (!jid) throw new MucProtocolError('bad-request', 'an affiliation change needs a jid');
        const target = tryParseJid(jid);
        if (!target) throw new MucProtocolError('jid-malformed', 'bad jid');
        const bare = target.local ? target.bareString() : target.domain;
        const affiliation = item.affiliation!;
        this.checkAffiliationChange(actorAff, bare, affiliation);
        if (affiliation === 'owner') owners.add(bare); else owners.delete(bare);
        const nick = item.jid && item.nick && AFF_RANK[affiliation] >= AFF_RANK.member ? item.nick : undefined;
        plan.push(() => {
          // An item with both jid and nick also reserves the nick for that user (as Prosody does).
          if (nick) this.reserveNick(bare, nick);
          else if (AFF_RANK[affiliation] < AFF_RANK.member) this.nicks.delete(bare);
          this.setAffiliation(bare, affiliation, occ ?? null, item.reason);
        });
      }
    }
    if (owners.size === 0 && [...this.affiliations.values()].includes('owner')) {
      throw new MucProtocolError('conflict', 'a room must keep an owner');
    }
    for (const step of plan) step();
  }

  private checkRoleChange(actor: Occupant | undefined, actorAff: Affiliation, target: Occupant, role: Role): void {
    if (!actor || actor.role !== 'moderator') throw new MucProtocolError('forbidden', 'only moderators may change roles');
    const targetAff = this.affiliationOf(target.bare);
    if (role === 'moderator' || target.role === 'moderator') {
      // §9.6/§9.7: granting or revoking moderation is for admins and owners.
      if (AFF_RANK[actorAff] < AFF_RANK.admin) throw new MucProtocolError('not-allowed', 'only admins may change moderators');
    }
    if (AFF_RANK[targetAff] >= AFF_RANK.admin && role !== 'moderator') {
      throw new MucProtocolError('not-allowed', 'the roles of admins and owners cannot be lowered');
    }
  }

  private checkAffiliationChange(actorAff: Affiliation, bare: string, affiliation: Affiliation): void {
    if (AFF_RANK[actorAff] < AFF_RANK.admin) throw new MucProtocolError('forbidden', 'only admins and owners may change affiliations');
    if (actorAff === 'owner') return;
    const current = this.affiliationOf(bare);
    if (affiliation === 'owner' || affiliation === 'admin' || AFF_RANK[current] >= AFF_RANK.admin) {
      throw new MucProtocolError('not-allowed', 'only owners may change admins and owners');
    }
  }

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
    this.host.save(this);
    const present = [...this.occupants.values()].filter((o) => o.bare === bare);
    if (present.length === 0) {
      // §9.3-style notice for someone not in the room, to those who may see real JIDs.
      const msg = new Element('message', { from: this.jid });
      msg.append(mucUserX({ items: [{ jid: bare, affiliation } as MucUserItem] }));
      const item = msg.getChild('x', MUC_NS.user)!.getChild('item')!;
      delete item.attrs.role;
      const xml = msg.toString();
      const targets: string[] = [];
      for (const o of this.occupants.values()) if (this.canSeeRealJids(o)) targets.push(...o.sessions.keys());
      this.emit(() => { for (const t of targets) this.deliver(t, xml, 'message'); });
      return;
    }
    for (const occ of present) {
      if (affiliation === 'outcast') {
        this.remove(occ, [STATUS.banned], actor, reason);
      } else if (this.config.membersOnly && AFF_RANK[affiliation] < AFF_RANK.member) {
        this.remove(occ, [STATUS.removedAffiliationChange], actor, reason);
      } else {
        occ.role = this.defaultRole(affiliation);
        const item: Partial<MucUserItem> = {};
        if (actor) item.actor = { nick: actor.nick, jid: actor.primary };
        if (reason !== undefined) item.reason = reason;
        this.broadcastPresence(occ, { item });
      }
    }
  }

  // --- owner (§10) ---------------------------------------------------------------------------------

  private mustOwn(from: Jid): void {
    if (this.affiliationOf(from.bareString()) !== 'owner') throw new MucProtocolError('forbidden', 'only owners may do this');
  }

  private ownerGet(from: Jid): Element {
    this.mustOwn(from);
    const fields: FormField[] = [{ var: 'FORM_TYPE', type: 'hidden', values: [ROOMCONFIG_FORM] }];
    for (const o of ROOM_OPTIONS) {
      const f: FormField = { var: o.field, type: o.type, label: o.label, values: o.write(this.config) };
      if (o.options) f.options = o.options;
      fields.push(f);
    }
    const listOf = (a: RoomAffiliation) => [...this.affiliations].filter(([, x]) => x === a).map(([j]) => j);
    fields.push({ var: LIST_FIELDS.owners, type: 'jid-multi', label: 'Room owners', values: listOf('owner') });
    fields.push({ var: LIST_FIELDS.admins, type: 'jid-multi', label: 'Room admins', values: listOf('admin') });
    const form: DataForm = { type: 'form', title: `Configuration for ${this.jid}`, fields };
    void this.host.events.fire('room/config-form', { room: this, form });
    return new Element('query', { xmlns: MUC_NS.owner }).append(buildForm(form));
  }

  /** accepted() answers the request once it is applied, before the room tells occupants (as Prosody orders them). */
  private ownerSet(payload: Element, from: Jid, accepted: () => void): void {
    this.mustOwn(from);
    const destroy = parseDestroy(payload);
    if (destroy) {
      this.destroy(destroy.jid, destroy.reason, destroy.password);
      return;
    }
    const formEl = payload.getChild('x', NS.dataForms);
    if (!formEl) throw new MucProtocolError('bad-request', 'expected a data form or destroy');
    let form: DataForm;
    try { form = parseForm(formEl); } catch (e) { throw new MucProtocolError('bad-request', (e as Error).message); }
    if (form.type === 'cancel') {
      // §10.1.3: cancelling the configuration of a new room destroys it.
      if (this.locked) this.destroy(undefined, undefined, undefined);
      return;
    }
    if (form.type !== 'submit') throw new MucProtocolError('bad-request', 'expected a submitted form');
    const ft = formType(form);
    if (ft !== undefined && ft !== ROOMCONFIG_FORM) throw new MucProtocolError('bad-request', 'not a room configuration form');
    const next: RoomConfig = { ...this.config, presenceBroadcast: [...this.config.presenceBroadcast] };
    const extra = new Set<string>();
    let owners: string[] | null = null;
    let admins: string[] | null = null;
    for (const field of form.fields) {
      if (!field.var || field.var === 'FORM_TYPE') continue;
      const option = optionForField(field.var);
      if (option) { option.read(next, field.values); continue; }
      if (field.var === LIST_FIELDS.owners) { owners = this.jidList(field.values); continue; }
      if (field.var === LIST_FIELDS.admins) { admins = this.jidList(field.values); continue; }
      extra.add(field.var);
    }
    // Fields of options that policy modules add are theirs to read; anything else is unknown.
    const ev = { room: this, form, config: next };
    void this.host.events.fire('room/config-submit', ev);
    const known = new Set<string>();
    const probe: DataForm = { type: 'form', fields: [] };
    void this.host.events.fire('room/config-form', { room: this, form: probe });
    for (const f of probe.fields) if (f.var) known.add(f.var);
    for (const v of extra) if (!known.has(v)) throw new MucProtocolError('bad-request', `unknown configuration field: ${v}`);
    const protectedFlag = formValue(form, 'muc#roomconfig_passwordprotectedroom');
    if (protectedFlag === '0' || protectedFlag === 'false') next.password = '';
    if (next.password === '' && (protectedFlag === '1' || protectedFlag === 'true')) {
      throw new MucProtocolError('not-acceptable', 'a password-protected room needs a password');
    }
    if (owners !== null && owners.length === 0) throw new MucProtocolError('conflict', 'a room must keep an owner');

    const before = this.config;
    this.config = next;
    this.locked = false;
    if (owners !== null) this.replaceList('owner', owners);
    if (admins !== null) this.replaceList('admin', admins);
    this.host.save(this);
    accepted();
    const codes: number[] = [];
    if (before.whois !== next.whois) codes.push(next.whois === 'anyone' ? STATUS.nowNonAnonymous : STATUS.nowSemiAnonymous);
    const changed = ROOM_OPTIONS.some((o) => JSON.stringify(o.write(before)) !== JSON.stringify(o.write(next)));
    if (changed) codes.unshift(STATUS.configChanged);
    if (codes.length > 0) {
      const msg = new Element('message', { from: this.jid, type: 'groupchat' }).append(mucUserX({ statuses: codes }));
      const xml = msg.toString();
      const targets: string[] = [];
      for (const o of this.occupants.values()) targets.push(...o.sessions.keys());
      this.emit(() => { for (const t of targets) this.deliver(t, xml, 'message'); });
    }
    if (next.membersOnly && !before.membersOnly) {
      for (const o of [...this.occupants.values()]) {
        if (AFF_RANK[this.affiliationOf(o.bare)] < AFF_RANK.member) this.remove(o, [STATUS.removedMembersOnly], null, undefined);
      }
    }
  }

  private jidList(values: string[]): string[] {
    return values.filter((v) => v !== '').map((v) => {
      const j = tryParseJid(v);
      if (!j) throw new MucProtocolError('jid-malformed', `bad JID: ${v}`);
      return j.bareString();
    });
  }

  private replaceList(affiliation: 'owner' | 'admin', jids: string[]): void {
    for (const [j, a] of [...this.affiliations]) if (a === affiliation && !jids.includes(j)) this.setAffiliation(j, 'none', null, undefined);
    for (const j of jids) if (this.affiliations.get(j) !== affiliation) this.setAffiliation(j, affiliation, null, undefined);
  }

  /** §10.9: everyone leaves with the reason and alternate venue; the room is gone. */
  destroy(venue: string | undefined, reason: string | undefined, password: string | undefined): void {
    const out: [string, string][] = [];
    for (const occ of this.occupants.values()) {
      for (const full of occ.sessions.keys()) {
        const p = new Element('presence', { from: `${this.jid}/${occ.nick}`, type: 'unavailable' });
        p.append(mucUserX({
          items: [{ affiliation: this.affiliationOf(occ.bare), role: 'none', jid: full }],
          statuses: [STATUS.selfPresence],
          destroy: { jid: venue, reason, password },
        }));
        out.push([full, p.toString()]);
      }
    }
    this.occupants.clear();
    this.byRealJid.clear();
    this.emit(() => { for (const [to, xml] of out) this.deliver(to, xml, 'presence'); });
    this.destroyed = true;
    this.host.destroyed(this, true);
  }

  // --- moderation (XEP-0425) -------------------------------------------------------------------------

  private moderate(stanza: Element, payload: Element, occ: Occupant | undefined, done: () => void): void {
    if (occ?.role !== 'moderator') throw new StanzaError('forbidden', 'only moderators may retract messages');
    let id: string | undefined;
    let reason: string | undefined;
    let legacy = false;
    if (payload.ns === MODERATE_NS) {
      id = payload.attrs.id;
      if (!payload.getChild('retract', RETRACT_NS)) throw new StanzaError('bad-request', 'only retraction is supported');
      reason = payload.getChildText('reason', MODERATE_NS);
    } else {
      legacy = true;
      id = payload.attrs.id;
      const m = payload.getChild('moderate', MODERATE_NS_0);
      if (!m || !m.getChild('retract', RETRACT_NS_0)) throw new StanzaError('bad-request', 'only retraction is supported');
      reason = m.getChildText('reason', MODERATE_NS_0);
    }
    if (!id) throw new StanzaError('bad-request', 'which message?');
    const notice = this.tombstone(id, occ, reason, legacy).toString();
    const archive = this.server.stores.archive;
    const item = this.emitLater();
    const moderator = occ;
    void (async () => {
      // XEP-0425 §7: the archive keeps the author's message, its content replaced by <retracted/>.
      const original = (await archive.query(this.jid, { ids: [id], limit: 1 })).entries[0];
      if (!original) return false;
      return archive.retract(this.jid, id, this.archivedTombstone(original.stanza, moderator, reason, legacy));
    })().then((found) => {
      if (!found) {
        this.release(item, () => this.fail(stanza, new StanzaError('item-not-found', 'no such message in this room')));
        return;
      }
      this.history = this.history.filter((h) => !h.xml.includes(`id='${id}' by='${escapeAttr(this.jid)}'`));
      const targets: string[] = [];
      for (const o of this.occupants.values()) targets.push(...o.sessions.keys());
      this.release(item, () => {
        for (const t of targets) this.deliver(t, notice, 'message');
        done();
      });
    }, (err) => {
      this.server.log.error('muc: retraction failed', { err, room: this.jid });
      this.release(item, () => this.fail(stanza, new StanzaError('internal-server-error')));
    });
  }

  /** The archived tombstone of a moderated message (XEP-0425 §7): from its author, content gone. */
  private archivedTombstone(originalXml: string, moderator: Occupant, reason: string | undefined, legacy: boolean): string {
    const original = parseStanzaString(originalXml);
    const t = new Element('message', { type: 'groupchat' });
    if (original?.attrs.from !== undefined) t.attrs.from = original.attrs.from;
    if (original?.attrs.id !== undefined) t.attrs.id = original.attrs.id;
    const author = original?.getChild('occupant-id', MUC_NS.occupantId)?.attrs.id;
    if (author !== undefined) t.c('occupant-id', { xmlns: MUC_NS.occupantId, id: author });
    const stamp = formatDateTime(new Date());
    const by = `${this.jid}/${moderator.nick}`;
    if (legacy) {
      const m = t.c('moderated', { xmlns: MODERATE_NS_0, by });
      m.c('retracted', { xmlns: RETRACT_NS_0, stamp });
      if (reason) m.c('reason').t(reason);
    } else {
      const r = t.c('retracted', { xmlns: RETRACT_NS, stamp });
      r.c('moderated', { xmlns: MODERATE_NS, by }).c('occupant-id', { xmlns: MUC_NS.occupantId, id: moderator.occupantId });
      if (reason) r.c('reason').t(reason);
    }
    return t.toString();
  }

  private tombstone(id: string, moderator: Occupant, reason: string | undefined, legacy: boolean): Element {
    const msg = new Element('message', { from: this.jid, type: 'groupchat', id: randomUUID() });
    if (legacy) {
      const apply = msg.c('apply-to', { xmlns: FASTEN_NS, id });
      const m = apply.c('moderated', { xmlns: MODERATE_NS_0, by: `${this.jid}/${moderator.nick}` });
      m.c('retract', { xmlns: RETRACT_NS_0 });
      if (reason) m.c('reason').t(reason);
    } else {
      const r = msg.c('retract', { xmlns: RETRACT_NS, id });
      const m = r.c('moderated', { xmlns: MODERATE_NS, by: `${this.jid}/${moderator.nick}` });
      m.c('occupant-id', { xmlns: MUC_NS.occupantId, id: moderator.occupantId });
      if (reason) r.c('reason').t(reason);
    }
    msg.c('body').t('This message was retracted by a moderator.');
    msg.c('fallback', { xmlns: 'urn:xmpp:fallback:0', for: legacy ? RETRACT_NS_0 : RETRACT_NS });
    return msg;
  }

  // --- hats (XEP-0317), used by policy modules --------------------------------------------------------

  setHats(bare: string, hats: Hat[]): void {
    if (hats.length === 0) this.hats.delete(bare); else this.hats.set(bare, hats);
    this.host.save(this);
    for (const o of this.occupants.values()) if (o.bare === bare) this.broadcastPresence(o, {});
  }
}
