// The admin protocol (XEP-0045 §8, §9): moderators change roles, admins and owners change
// affiliations, and the lists are read back. A request with several items succeeds or fails whole.
import { tryParseJid } from '../../protocol/jid.js';
import {
  MUC_NS, STATUS, MucProtocolError, parseAdminQuery, adminQuery, type Affiliation, type Role, type AdminItem,
} from '../../protocol/muc.js';
import type { RoomFeature } from './events.js';
import { AFF_RANK } from './membership.js';
import type { Room } from './room.js';
import type { Occupant } from './occupants.js';

function checkRoleChange(room: Room, actor: Occupant | undefined, actorAff: Affiliation, target: Occupant, role: Role): void {
  if (!actor || actor.role !== 'moderator') throw new MucProtocolError('forbidden', 'only moderators may change roles');
  const targetAff = room.affiliationOf(target.bare);
  if (role === 'moderator' || target.role === 'moderator') {
    // §9.6/§9.7: granting or revoking moderation is for admins and owners.
    if (AFF_RANK[actorAff] < AFF_RANK.admin) throw new MucProtocolError('not-allowed', 'only admins may change moderators');
  }
  if (AFF_RANK[targetAff] >= AFF_RANK.admin && role !== 'moderator') {
    throw new MucProtocolError('not-allowed', 'the roles of admins and owners cannot be lowered');
  }
}

function checkAffiliationChange(room: Room, actorAff: Affiliation, bare: string, affiliation: Affiliation): void {
  if (AFF_RANK[actorAff] < AFF_RANK.admin) throw new MucProtocolError('forbidden', 'only admins and owners may change affiliations');
  if (actorAff === 'owner') return;
  const current = room.affiliationOf(bare);
  if (affiliation === 'owner' || affiliation === 'admin' || AFF_RANK[current] >= AFF_RANK.admin) {
    throw new MucProtocolError('not-allowed', 'only owners may change admins and owners');
  }
}

export const adminIq: RoomFeature = {
  name: 'admin-iq',
  init(hooks) {
    hooks.iq('get', MUC_NS.admin, ({ room, payload, from, occupant, reply }) => {
      const want = parseAdminQuery(payload).items[0]!;
      const aff = room.affiliationOf(from.bareString());
      if (want.role !== undefined) {
        if (occupant?.role !== 'moderator') throw new MucProtocolError('forbidden', 'only moderators may list roles');
        const out: AdminItem[] = [];
        for (const o of room.occupants.values()) {
          if (o.role === want.role) out.push({ role: o.role, nick: o.nick, affiliation: room.affiliationOf(o.bare), jid: o.bare });
        }
        return reply(adminQuery(out));
      }
      const wanted = want.affiliation!;
      if (wanted === 'none') throw new MucProtocolError('bad-request', 'there is no list of unaffiliated users');
      const allowed = AFF_RANK[aff] >= AFF_RANK.admin
        // Prosody's policy, which its clients expect: in a non-anonymous room members see the member lists.
        || (AFF_RANK[aff] >= AFF_RANK.member && room.seesJids(undefined) && wanted !== 'outcast');
      if (!allowed) throw new MucProtocolError('forbidden', 'you may not see this list');
      const out: AdminItem[] = [];
      for (const [jid, a] of room.affiliations) {
        if (a !== wanted) continue;
        const item: AdminItem = { affiliation: a, jid };
        const nick = room.nicks.get(jid);
        if (nick) item.nick = nick;
        out.push(item);
      }
      return reply(adminQuery(out));
    });

    hooks.iq('set', MUC_NS.admin, ({ room, payload, from, occupant: occ, reply }) => {
      const { items } = parseAdminQuery(payload);
      const actorAff = room.affiliationOf(from.bareString());
      // Check everything before changing anything: the request succeeds or fails as a whole.
      const plan: (() => void)[] = [];
      const owners = new Set([...room.affiliations].filter(([, a]) => a === 'owner').map(([j]) => j));
      for (const item of items) {
        if (item.role !== undefined) {
          if (!item.nick) throw new MucProtocolError('bad-request', 'a role change needs a nick');
          const target = room.occupants.get(item.nick);
          if (!target) throw new MucProtocolError('item-not-found', 'no such occupant');
          checkRoleChange(room, occ, actorAff, target, item.role);
          const role = item.role;
          plan.push(() => {
            if (role === 'none') room.remove(target, [STATUS.kicked], occ ?? null, item.reason);
            else room.setRole(target, role, occ ?? null, item.reason);
          });
        } else {
          let jid = item.jid;
          if (!jid && item.nick) jid = room.occupants.get(item.nick)?.bare;
          if (!jid) throw new MucProtocolError('bad-request', 'an affiliation change needs a jid');
          const target = tryParseJid(jid);
          if (!target) throw new MucProtocolError('jid-malformed', 'bad jid');
          const bare = target.local ? target.bareString() : target.domain;
          const affiliation = item.affiliation!;
          checkAffiliationChange(room, actorAff, bare, affiliation);
          if (affiliation === 'owner') owners.add(bare); else owners.delete(bare);
          const nick = item.jid && item.nick && AFF_RANK[affiliation] >= AFF_RANK.member ? item.nick : undefined;
          plan.push(() => {
            // An item with both jid and nick also reserves the nick for that user (as Prosody does).
            if (nick) room.reserveNick(bare, nick);
            else if (AFF_RANK[affiliation] < AFF_RANK.member) room.nicks.delete(bare);
            room.setAffiliation(bare, affiliation, occ ?? null, item.reason);
          });
        }
      }
      if (owners.size === 0 && [...room.affiliations.values()].includes('owner')) {
        throw new MucProtocolError('conflict', 'a room must keep an owner');
      }
      for (const step of plan) step();
      return reply();
    });
  },
};
