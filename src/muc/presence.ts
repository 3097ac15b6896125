// Occupant presence (XEP-0045 §7.2, §7.6, §7.14): an occupant's presence as the room sends it (the
// client's presence with the room's additions from presence/build and the muc#user item, serialised
// without 'to'), and who gets which presence when an occupant enters, changes, or leaves.
import { Element } from '../../protocol/xml.js';
import { StanzaError } from '../../protocol/errors.js';
import { STATUS, MucProtocolError, parseJoin, mucUserX, type MucUserItem, type Role } from '../../protocol/muc.js';
import type { Room } from './room.js';
import { cleanPresence, type Occupant } from './occupants.js';

export interface PresenceOptions {
  /** Show real JIDs (each session's, newest first, unless onlyJid). */
  withJid: boolean;
  onlyJid?: string;
  statuses?: number[];
  type?: 'unavailable';
  /** The presence to copy children from (default: the occupant's current one). */
  base?: Element;
  /** Show the actor's real JID (default: withJid); an occupant's own presence shows it only to those who may see real JIDs. */
  actorJid?: boolean;
  item?: Partial<MucUserItem>;
  extra?: Element[];
}

export function occupantPresence(room: Room, occ: Occupant, opts: PresenceOptions): string {
  const base = opts.base ?? occ.presence;
  const p = new Element('presence', { from: `${room.jid}/${occ.nick}` });
  if (opts.type) p.attrs.type = opts.type;
  for (const c of base.children) p.children.push(c);
  room.hooks.build('presence/build', { room, occupant: occ, presence: p, unavailable: opts.type !== undefined });
  const affiliation = room.affiliationOf(occ.bare);
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

/** The roles an occupant in the room can have. */
const OCCUPANT_ROLES: readonly Role[] = ['moderator', 'participant', 'visitor'];

/** Who gets which presence: [to, xml] pairs, one per session. */
export type Deliveries = [string, string][];

/**
 * The same presence to every other occupant, with or without real JIDs as each may see them
 * (built at most twice, not once per recipient).
 */
export function toOthers(room: Room, occ: Occupant, out: Deliveries, build: (withJid: boolean) => string): void {
  let plain: string | undefined;
  let jids: string | undefined;
  for (const other of room.occupants.values()) {
    if (other === occ) continue;
    const xml = room.seesJids(other) ? (jids ??= build(true)) : (plain ??= build(false));
    for (const s of other.sessions.keys()) out.push([s, xml]);
  }
}

/** The occupant list, the newcomer's presence to all, and its self-presence (history and subject follow). */
export function sendJoin(room: Room, occ: Occupant, full: string, selfStatuses: number[], announce: boolean): void {
  room.touch(occ);
  const out: Deliveries = [];
  const withJid = room.seesJids(occ);
  // Decided once per role, not per occupant: a large room shows none and has thousands (a join was O(n)).
  const shown = OCCUPANT_ROLES.filter((r) => room.broadcasts(r));
  if (shown.length > 0) {
    for (const other of room.occupants.values()) {
      if (other !== occ && shown.includes(other.role)) out.push([full, occupantPresence(room, other, { withJid })]);
    }
  }
  room.hooks.build('occupant/roster', { room, occupant: occ, full, out });
  if (announce && room.broadcasts(occ.role)) {
    toOthers(room, occ, out, (j) => occupantPresence(room, occ, { withJid: j }));
    // The occupant's other sessions see the new one too.
    let jids: string | undefined;
    for (const s of occ.sessions.keys()) if (s !== full) out.push([s, jids ??= occupantPresence(room, occ, { withJid: true })]);
  }
  const statuses = [...selfStatuses];
  if (room.seesJids(undefined)) statuses.unshift(STATUS.nonAnonymous);
  statuses.push(STATUS.selfPresence);
  out.push([full, occupantPresence(room, occ, { withJid: true, onlyJid: full, statuses })]);
  room.sendAll(out);
}

export function updatePresence(room: Room, occ: Occupant, full: string, stanza: Element): void {
  const request = parseJoin(stanza);
  // Re-sent join (a client that lost track): give it the room again (as Prosody does).
  occ.sessions.delete(full);
  occ.sessions.set(full, cleanPresence(stanza));
  if (request) {
    sendJoin(room, occ, full, [], false);
    room.hooks.after('occupant/joined', { room, occupant: occ, full, history: request.history, rejoin: true });
    return;
  }
  broadcastPresence(room, occ, { selfFull: full });
}

/** The occupant's current presence to everyone (self-presence with 110 to its own sessions). */
export function broadcastPresence(room: Room, occ: Occupant, opts: { selfFull?: string; statuses?: number[]; item?: Partial<MucUserItem> } = {}): void {
  room.touch(occ);
  const statuses = opts.statuses ?? [];
  // The occupant learns who changed its role or affiliation by nick only (as Prosody sends it).
  const self = occupantPresence(room, occ, { withJid: true, statuses: [...statuses, STATUS.selfPresence], item: opts.item, actorJid: false });
  const out: Deliveries = [];
  for (const s of occ.sessions.keys()) out.push([s, self]);
  if (room.broadcasts(occ.role)) toOthers(room, occ, out, (withJid) => occupantPresence(room, occ, { withJid, statuses, item: opts.item }));
  room.sendAll(out);
}

export function changeNick(room: Room, occ: Occupant, full: string, nick: string, stanza: Element): void {
  const taken = room.occupants.get(nick);
  if (taken && taken.bare !== occ.bare) throw new MucProtocolError('conflict', 'that nick is taken');
  room.hooks.check('occupant/pre-change', { room, occupant: occ, nick });
  if (taken) throw new MucProtocolError('not-acceptable', 'another of your sessions uses that nick');
  // §7.6: unavailable with 303 and the new nick, then available under the new nick.
  const unavailable = (withJid: boolean, self: boolean) => occupantPresence(room, occ, {
    withJid, type: 'unavailable', item: { nick, role: occ.role }, base: new Element('presence'),
    statuses: self ? [STATUS.nickChanged, STATUS.selfPresence] : [STATUS.nickChanged],
  });
  const out: Deliveries = [];
  const self = unavailable(true, true);
  for (const s of occ.sessions.keys()) out.push([s, self]);
  if (room.broadcasts(occ.role)) toOthers(room, occ, out, (withJid) => unavailable(withJid, false));
  room.sendAll(out);
  room.touch(occ);
  room.occupants.delete(occ.nick);
  occ.nick = nick;
  room.occupants.set(nick, occ);
  occ.sessions.delete(full);
  occ.sessions.set(full, cleanPresence(stanza));
  broadcastPresence(room, occ, { statuses: [] });
}

/** One session leaves; the occupant leaves with its last session. */
export function leave(room: Room, occ: Occupant, full: string, stanza: Element | null, statuses: number[], item?: Partial<MucUserItem>): void {
  const base = stanza ? cleanPresence(stanza) : new Element('presence');
  room.touch(occ);
  occ.sessions.delete(full);
  room.byRealJid.delete(full);
  const self = occupantPresence(room, occ, { withJid: true, onlyJid: full, type: 'unavailable', base, statuses: [...statuses, STATUS.selfPresence], item, actorJid: room.seesJids(occ) });
  if (occ.sessions.size > 0) {
    // Others still see the occupant, now through its remaining sessions.
    room.emit(() => room.deliver(full, self, 'presence'));
    broadcastPresence(room, occ, {});
    return;
  }
  room.occupants.delete(occ.nick);
  const out: Deliveries = [[full, self]];
  if (room.broadcasts(occ.role)) {
    toOthers(room, occ, out, (withJid) => occupantPresence(room, occ, { withJid, onlyJid: withJid ? full : undefined, type: 'unavailable', base, statuses, item }));
  }
  room.sendAll(out);
  room.hooks.after('occupant/left', { room, occupant: occ, full });
  if (room.occupants.size === 0) room.host.emptied(room);
}

/** Removes every session of an occupant (kick, ban, membership loss), telling everyone why. */
export function removeOccupant(room: Room, occ: Occupant, statuses: number[], actor: Occupant | null, reason: string | undefined): void {
  const item: Partial<MucUserItem> = {};
  if (actor) item.actor = { nick: actor.nick, jid: actor.primary };
  if (reason !== undefined) item.reason = reason;
  const sessions = [...occ.sessions.keys()];
  for (let i = 0; i < sessions.length; i++) {
    const full = sessions[i]!;
    if (i < sessions.length - 1) {
      occ.sessions.delete(full);
      room.byRealJid.delete(full);
      const self = occupantPresence(room, occ, { withJid: true, onlyJid: full, type: 'unavailable', base: new Element('presence'), statuses: [...statuses, STATUS.selfPresence], item, actorJid: room.seesJids(occ) });
      room.emit(() => room.deliver(full, self, 'presence'));
    } else {
      leave(room, occ, full, null, statuses, item);
    }
  }
}

/** Presence probe to an occupant JID (as Prosody answers it): the occupant's current presence. */
export function probe(room: Room, prober: Occupant | undefined, nick: string): void {
  if (!prober) throw new StanzaError('not-acceptable', 'only occupants may probe', 'cancel');
  const target = room.occupants.get(nick);
  const full = prober.primary;
  if (target) {
    room.send([full], occupantPresence(room, target, { withJid: room.seesJids(prober) }), 'presence');
    return;
  }
  const bare = room.nickReservedFor(nick);
  if (!bare) return;
  const p = new Element('presence', { from: `${room.jid}/${nick}`, type: 'unavailable' });
  const item: MucUserItem = { nick, affiliation: room.affiliationOf(bare), role: 'none' };
  if (room.seesJids(prober)) item.jid = bare;
  p.append(mucUserX({ items: [item] }));
  room.send([full], p.toString(), 'presence');
}
