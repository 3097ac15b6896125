// Who may be in the room, as XEP-0045 fixes it for every room: a nick belongs to one user, outcasts
// stay out (§7.2.7, §7.2.9), and the server's admins (and the server itself) are owners of every room. Options that narrow
// entry further (members-only, password, lock…) are features. Changing an affiliation tells the room.
import { Element } from '../../protocol/xml.js';
import { MUC_NS, STATUS, MucProtocolError, mucUserX, type Affiliation, type MucUserItem } from '../../protocol/muc.js';
import type { RoomFeature } from './events.js';
import type { Room } from './room.js';
import type { Occupant } from './occupants.js';

/** Affiliations in order of privilege (§5.2), for "at least a member" and the like. */
export const AFF_RANK: Record<Affiliation, number> = { outcast: 0, none: 1, member: 2, admin: 3, owner: 4 };

export const membership: RoomFeature = {
  name: 'membership',
  init(hooks, ctx) {
    // The server's own JID, which only the server's code can send from, acts for its admins (the admin
    // operations on rooms); server admins themselves are owners of every room.
    hooks.on('occupant/affiliation', ({ bare }) => (bare === ctx.server.domain || ctx.server.isAdmin(bare) ? 'owner' : undefined), 100);
    hooks.on('occupant/pre-join', ({ existing, bare, affiliation }) => {
      if (existing && existing.bare !== bare) throw new MucProtocolError('conflict', 'that nick is taken');
      if (!existing && affiliation === 'outcast') throw new MucProtocolError('forbidden', 'you are banned from this room');
      return undefined;
    }, 50);
  },
};

export function setAffiliation(room: Room, bare: string, affiliation: Affiliation, actor: Occupant | null, reason: string | undefined): void {
  if (affiliation === 'none') room.affiliations.delete(bare);
  else room.affiliations.set(bare, affiliation);
  room.save();
  const present = [...room.occupants.values()].filter((o) => o.bare === bare);
  if (present.length === 0) {
    // §9.3-style notice for someone not in the room, to those who may see real JIDs.
    const msg = new Element('message', { from: room.jid });
    msg.append(mucUserX({ items: [{ jid: bare, affiliation } as MucUserItem] }));
    delete msg.getChild('x', MUC_NS.user)!.getChild('item')!.attrs.role;
    room.send(room.sessions((o) => room.seesJids(o)), msg.toString(), 'message');
    return;
  }
  for (const occ of present) {
    const role = room.defaultRole(affiliation, bare);
    if (role === 'none') {
      // Banned (301), or no longer allowed in, e.g. a members-only room (321).
      room.remove(occ, [affiliation === 'outcast' ? STATUS.banned : STATUS.removedAffiliationChange], actor, reason);
    } else {
      occ.role = role;
      const item: Partial<MucUserItem> = {};
      if (actor) item.actor = { nick: actor.nick, jid: actor.primary };
      if (reason !== undefined) item.reason = reason;
      room.broadcastPresence(occ, { item });
    }
  }
}

/** Reserves a nick; someone else using it in the room has to leave (as Prosody does). */
export function reserveNick(room: Room, bare: string, nick: string): void {
  room.nicks.set(bare, nick);
  const holder = room.occupants.get(nick);
  if (holder && holder.bare !== bare) room.remove(holder, [STATUS.kicked], null, 'This nickname is reserved');
}
