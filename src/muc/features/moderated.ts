// Moderated rooms (muc#roomconfig_moderatedroom, XEP-0045 §8.3): newcomers without an affiliation
// enter as visitors and need voice to speak.
import { bool } from '../option.js';
import type { RoomFeature } from '../events.js';

export const moderated: RoomFeature = {
  name: 'moderated',
  init(hooks) {
    hooks.option(bool('moderated', 'muc#roomconfig_moderatedroom', 'Moderated (only occupants with voice may speak)', 7, false));
    hooks.on('occupant/default-role', ({ room, affiliation }) => (affiliation === 'none' && room.config.moderated ? 'visitor' : undefined));
    hooks.on('disco/info', ({ room, features }) => { features.push(room.config.moderated ? 'muc_moderated' : 'muc_unmoderated'); return undefined; }, 30);
  },
};
