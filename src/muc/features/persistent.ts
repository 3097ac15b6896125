// Persistent rooms (muc#roomconfig_persistentroom): a persistent room stays when its last occupant
// leaves; a temporary one goes.
import { bool } from '../option.js';
import type { RoomFeature } from '../events.js';

export const persistent: RoomFeature = {
  name: 'persistent',
  init(hooks) {
    hooks.option(bool('persistent', 'muc#roomconfig_persistentroom', 'Persistent (room stays when empty)', 4, false));
    hooks.on('room/persistent', ({ room }) => room.config.persistent === true);
    hooks.on('room/saving', ({ room, record }) => { record.persistent = room.config.persistent === true; return undefined; });
    hooks.on('disco/info', ({ room, features }) => { features.push(room.config.persistent ? 'muc_persistent' : 'muc_temporary'); return undefined; }, 15);
  },
};
