// Who may be in the room, as XEP-0045 fixes it for every room: a nick belongs to one user, outcasts
// stay out (§7.2.7, §7.2.9), and the server's admins are owners of every room. Options that narrow
// entry further (members-only, password, lock…) are features.
import { MucProtocolError } from '../../protocol/muc.js';
import type { RoomFeature } from './events.js';

export const membership: RoomFeature = {
  name: 'membership',
  init(hooks, ctx) {
    hooks.on('occupant/affiliation', ({ bare }) => (ctx.server.isAdmin(bare) ? 'owner' : undefined), 100);
    hooks.on('occupant/pre-join', ({ existing, bare, affiliation }) => {
      if (existing && existing.bare !== bare) throw new MucProtocolError('conflict', 'that nick is taken');
      if (!existing && affiliation === 'outcast') throw new MucProtocolError('forbidden', 'you are banned from this room');
      return undefined;
    }, 50);
  },
};
