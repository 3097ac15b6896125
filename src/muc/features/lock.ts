// Locked new rooms (XEP-0045 §10.1): a room created with the MUC extension stays locked, and
// answers item-not-found to everyone but its owners, until its owner submits the configuration
// (owner-iq unlocks it; an emptied locked room is forgotten by the service). A groupchat 1.0 join
// creates an instant, unlocked room.
import { StanzaError } from '../../../protocol/errors.js';
import type { RoomFeature } from '../events.js';

export const lock: RoomFeature = {
  name: 'lock',
  init(hooks) {
    hooks.on('room/created', ({ room, request }) => { room.locked = request !== null; return undefined; });
    hooks.on('occupant/pre-join', ({ room, affiliation }) => {
      if (room.locked && affiliation !== 'owner') throw new StanzaError('item-not-found', 'the room is locked until its owner configures it');
      return undefined;
    }, 100);
  },
};
