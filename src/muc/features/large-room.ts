// Large rooms (the service's participant update limit, default 75): above the limit a room stops
// broadcasting joins and leaves and a newcomer gets only its own presence, not the occupant list;
// it goes back to normal once below 80 % of the limit, so a room at the edge does not flap.
import type { RoomFeature } from '../events.js';
import type { Room } from '../room.js';
import { serviceSettings } from '../governed.js';

/** Below this share of the limit a large room is normal again. */
const RESUME_AT = 0.8;

export const largeRoom: RoomFeature = {
  name: 'large-room',
  init(hooks, ctx) {
    const large = new WeakSet<Room>();
    const limitOf = () => serviceSettings(ctx.server, ctx.domain)?.participantUpdateLimit;
    /** Whether the room is large now, updating the state from its size. */
    const isLarge = (room: Room): boolean => {
      const limit = limitOf();
      if (limit === undefined || limit <= 0) return false;
      const n = room.occupants.size;
      if (n > limit) large.add(room);
      else if (n < limit * RESUME_AT) large.delete(room);
      return large.has(room);
    };
    // Before presence-broadcast's room option.
    hooks.on('presence/broadcast', ({ room, role }) => (role !== 'none' && isLarge(room) ? false : undefined), 10);
  },
};
