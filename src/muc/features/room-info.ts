// The room's name, description and language (muc#roomconfig_roomname, _roomdesc, _lang), shown in
// disco#info as its identity and muc#roominfo fields, with the number of occupants.
import { text } from '../option.js';
import type { RoomFeature } from '../events.js';

export const roomInfo: RoomFeature = {
  name: 'room-info',
  init(hooks) {
    hooks.option(text('name', 'muc#roomconfig_roomname', 'Title', 1, 200));
    hooks.option(text('description', 'muc#roomconfig_roomdesc', 'Description', 2, 2000));
    hooks.option(text('language', 'muc#roomconfig_lang', 'Language tag for room (e.g. \'en\', \'de\', \'fr\' etc.)', 3, 35));
    hooks.on('disco/info', ({ room, identity, fields }) => {
      if (room.config.name) identity.name = String(room.config.name);
      fields.push(
        { var: 'muc#roomconfig_roomname', type: 'text-single', label: 'Title', values: [String(room.config.name)] },
        { var: 'muc#roominfo_description', type: 'text-single', label: 'Description', values: [String(room.config.description)] },
        { var: 'muc#roominfo_occupants', type: 'text-single', label: 'Number of occupants', values: [String(room.occupants.size)] },
      );
      return undefined;
    }, 100);
    // After the subject and history fields, as the form has always listed them.
    hooks.on('disco/info', ({ room, fields }) => {
      fields.push({ var: 'muc#roominfo_lang', type: 'text-single', label: 'Language', values: [String(room.config.language)] });
      return undefined;
    }, 70);
  },
};
