// Members-only rooms (muc#roomconfig_membersonly, XEP-0045 §7.2.6, §7.8.2, §9.4): only members and
// above enter, register a nick or read the archive; an invitation from someone allowed to invite
// makes the invitee a member; whoever loses membership (321) or is not a member when the room
// becomes members-only (322) is removed.
import { StanzaError } from '../../../protocol/errors.js';
import { STATUS, MucProtocolError, type Affiliation } from '../../../protocol/muc.js';
import { bool } from '../option.js';
import type { RoomFeature } from '../events.js';
import { AFF_RANK } from '../membership.js';
import type { Room } from '../room.js';

const on = (room: Room) => room.config.membersOnly === true;
const isMember = (a: Affiliation) => AFF_RANK[a] >= AFF_RANK.member;

export const membersOnly: RoomFeature = {
  name: 'members-only',
  init(hooks) {
    hooks.option(bool('membersOnly', 'muc#roomconfig_membersonly', 'Only allow members to join', 6, false));
    hooks.on('occupant/pre-join', ({ room, existing, affiliation }) => {
      if (!existing && on(room) && !isMember(affiliation)) throw new MucProtocolError('registration-required', 'this room is members-only');
      return undefined;
    }, 40);
    // Non-members have no place here: an occupant who stops being a member leaves (321).
    hooks.on('occupant/default-role', ({ room, affiliation }) => (on(room) && !isMember(affiliation) ? 'none' : undefined), 10);
    hooks.on('invite/pre', ({ room, inviter, anyoneMayInvite }) => {
      if (on(room) && !anyoneMayInvite && AFF_RANK[room.affiliationOf(inviter.bare)] < AFF_RANK.admin) {
        throw new MucProtocolError('forbidden', 'only admins may invite to this room');
      }
      return undefined;
    });
    hooks.on('invite/sending', ({ room, inviter, invitee }) => {
      if (on(room) && !isMember(room.affiliationOf(invitee))) room.setAffiliation(invitee, 'member', inviter, undefined);
      return undefined;
    });
    hooks.on('archive/pre-read', ({ room, affiliation }) => {
      if (on(room) && !isMember(affiliation)) throw new StanzaError('forbidden', 'the archive of a members-only room is for members');
      return undefined;
    }, 20);
    hooks.on('register/pre', ({ room, affiliation }) => {
      if (on(room) && !isMember(affiliation)) throw new MucProtocolError('registration-required', 'only members may register in this room');
      return undefined;
    });
    hooks.on('config/changed', ({ room, before }) => {
      if (!on(room) || before.membersOnly === true) return undefined;
      for (const o of [...room.occupants.values()]) {
        if (!isMember(room.affiliationOf(o.bare))) room.remove(o, [STATUS.removedMembersOnly], null, undefined);
      }
      return undefined;
    });
    hooks.on('disco/info', ({ room, features }) => { features.push(on(room) ? 'muc_membersonly' : 'muc_open'); return undefined; }, 35);
  },
};
