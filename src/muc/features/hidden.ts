// Public and hidden rooms (muc#roomconfig_publicroom). A hidden room is left out of the service's
// room list (the store lists public rooms only), and its archive is for its members and occupants.
import { StanzaError } from '../../../protocol/errors.js';
import { bool } from '../option.js';
import type { RoomFeature } from '../events.js';
import { AFF_RANK } from '../membership.js';

export const hidden: RoomFeature = {
  name: 'hidden',
  init(hooks) {
    hooks.option(bool('public', 'muc#roomconfig_publicroom', 'Include room information in public lists', 5, true));
    hooks.on('disco/info', ({ room, features }) => { features.push(room.config.public ? 'muc_public' : 'muc_hidden'); return undefined; }, 40);
    hooks.on('archive/pre-read', ({ room, occupant, affiliation }) => {
      if (!room.config.public && !occupant && AFF_RANK[affiliation] < AFF_RANK.member) {
        throw new StanzaError('forbidden', 'the archive of a hidden room is for its members and occupants');
      }
      return undefined;
    }, 10);
  },
};
