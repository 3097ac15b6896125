// Who may upload a file for a room, how large it may be, and who may read it afterwards. Governed
// rooms follow the persistent-chat rules (src/pchat/access.ts: canPost, canRead and the category's
// file-upload switch); plain rooms follow XEP-0045 (members, occupants, banned users).
import { tryParseJid } from '../../protocol/jid.js';
import { StanzaError } from '../../protocol/errors.js';
import { DEFAULT_CHAT_SETTINGS } from '../../storage/types.js';
import type { Server } from '../context.js';
import { canPost, canRead, existsFor } from '../pchat/access.js';
import { governedRoom, serviceSettings } from '../muc/governed.js';
import { mucServices } from '../muc/module.js';

/** Why a slot for a room is refused, as the metrics label it. */
export type RoomRefusal = 'no-room' | 'not-member' | 'switch-off';

export type RoomVerdict =
  | { ok: true; room: string; maxBytes: number }
  | { ok: false; reason: RoomRefusal; error: StanzaError };

const RANK: Record<string, number> = { outcast: -1, none: 0, member: 1, admin: 2, owner: 3 };

/** A room as plain XEP-0045 sees it: its options and the user's affiliation and presence. */
async function plainRoom(server: Server, domain: string, local: string, bare: string):
  Promise<{ config: Record<string, unknown>; affiliation: string; occupant: boolean } | null> {
  const loaded = mucServices(server).get(domain)?.loadedRoom(local);
  if (loaded) {
    let occupant = false;
    for (const o of loaded.occupants.values()) if (o.bare === bare) { occupant = true; break; }
    return { config: loaded.config as Record<string, unknown>, affiliation: loaded.affiliationOf(bare), occupant };
  }
  const rec = await server.stores.rooms.get(domain, local);
  if (!rec) return null;
  return { config: rec.config, affiliation: rec.affiliations[bare] ?? 'none', occupant: false };
}

function roomJidOf(server: Server, jid: string): { domain: string; local: string; room: string } | null {
  const j = tryParseJid(jid);
  if (!j || !j.local || j.resource || !mucServices(server).has(j.domain)) return null;
  return { domain: j.domain, local: j.local, room: j.bareString() };
}

function maxBytesOf(server: Server, domain: string): number {
  const settings = serviceSettings(server, domain) ?? DEFAULT_CHAT_SETTINGS;
  return settings.maxFileSizeKb * 1024;
}

/** The largest file any room of any service takes (bytes). */
export function largestRoomFile(server: Server): number {
  let max = 0;
  for (const domain of mucServices(server).keys()) max = Math.max(max, maxBytesOf(server, domain));
  return max;
}

const NO_ROOM = (): RoomVerdict => ({ ok: false, reason: 'no-room', error: new StanzaError('item-not-found', 'no such room') });
const NOT_MEMBER = (): RoomVerdict => ({ ok: false, reason: 'not-member', error: new StanzaError('forbidden', 'you are not a member of this room, so you may not post files to it') });

/** May this user upload a file for the room, and up to what size? */
export async function roomForUpload(server: Server, roomJid: string, bare: string): Promise<RoomVerdict> {
  const r = roomJidOf(server, roomJid);
  if (!r) return NO_ROOM();
  const g = governedRoom(server, r.domain, r.local);
  if (g) {
    const subject = await g.model.subjectOf(bare);
    // A room that does not exist for someone is answered as a missing room (secret rooms stay secret).
    if (!existsFor(subject, g.record, g.category)) return NO_ROOM();
    if (!canPost(subject, g.record, g.category)) return NOT_MEMBER();
    if (!g.category.fileUpload) {
      return { ok: false, reason: 'switch-off', error: new StanzaError('not-allowed', `file upload is off in the category ${g.category.name} of this room`) };
    }
    return { ok: true, room: r.room, maxBytes: g.service.settings.maxFileSizeKb * 1024 };
  }
  const p = await plainRoom(server, r.domain, r.local, bare);
  if (!p) return NO_ROOM();
  const rank = RANK[p.affiliation] ?? 0;
  // XEP-0045: members may post; in an open room anyone who may enter (not banned); occupants always.
  const open = p.config.membersOnly !== true && !p.config.password;
  if (rank < 0 || (!(rank >= RANK.member! || p.occupant || open))) return NOT_MEMBER();
  return { ok: true, room: r.room, maxBytes: maxBytesOf(server, r.domain) };
}

/** May this user read the room's archive (and so its files)? Administrators may. */
export async function mayReadRoom(server: Server, roomJid: string, bare: string): Promise<boolean> {
  if (server.isAdmin(bare)) return true;
  const r = roomJidOf(server, roomJid);
  if (!r) return false;
  const g = governedRoom(server, r.domain, r.local);
  if (g) return canRead(await g.model.subjectOf(bare), g.record, g.category);
  const p = await plainRoom(server, r.domain, r.local, bare);
  if (!p) return false;
  const rank = RANK[p.affiliation] ?? 0;
  if (rank < 0) return false;
  // As the room's archive/pre-read rules: members-only rooms for members, hidden rooms for members and occupants.
  if (p.config.membersOnly === true) return rank >= RANK.member!;
  if (p.config.public === false) return rank >= RANK.member! || p.occupant;
  return true;
}
