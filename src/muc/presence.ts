// An occupant's presence as the room sends it (XEP-0045 §7.2.3): the client's presence with the
// room's additions (presence/build: occupant-id, hats) and the muc#user item, serialised without 'to'.
import { Element } from '../../protocol/xml.js';
import { mucUserX, type MucUserItem } from '../../protocol/muc.js';
import type { Room } from './room.js';
import type { Occupant } from './occupants.js';

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
