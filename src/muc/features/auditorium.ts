// Roles in rooms under the persistent-chat model: in an auditorium presenters are participants and
// everyone else listens (visitor); in a normal governed room every member speaks. Owners (managers,
// admins) are moderators either way. Who may post is still decided by the rule (canPost, in
// governance), whatever the role; the role is what clients show.
import { roleOf } from '../../pchat/access.js';
import type { RoomFeature } from '../events.js';
import { governedRoom } from '../governed.js';

export const auditorium: RoomFeature = {
  name: 'auditorium',
  init(hooks, ctx) {
    // Before members-only and moderated, which know only XEP-0045 options.
    hooks.on('occupant/default-role', ({ room, affiliation, bare }) => {
      if (bare === undefined) return undefined;
      const g = governedRoom(ctx.server, ctx.domain, room.name);
      const s = g?.model.subject(bare);
      if (!g || !s) return undefined;
      return roleOf(s, g.record, g.category, affiliation);
    }, 50);
  },
};
