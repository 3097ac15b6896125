// Who may send private messages through the room (muc#roomconfig_allowpm, XEP-0045 §7.5).
import { MucProtocolError } from '../../../protocol/muc.js';
import { choice } from '../option.js';
import type { RoomFeature } from '../events.js';

export const privateMessages: RoomFeature = {
  name: 'private-messages',
  init(hooks) {
    hooks.option(choice('allowPm', 'muc#roomconfig_allowpm', 'Who may send private messages', 15, ['anyone', 'participants', 'moderators', 'none'], 'anyone'));
    hooks.on('message/private', ({ room, from }) => {
      const allowPm = room.config.allowPm;
      const allowed = allowPm === 'anyone' ? true
        : allowPm === 'participants' ? from.role === 'participant' || from.role === 'moderator'
          : allowPm === 'moderators' ? from.role === 'moderator' : false;
      if (!allowed) throw new MucProtocolError('forbidden', 'private messages are not allowed here');
      return undefined;
    });
    hooks.on('disco/info', ({ room, fields }) => {
      fields.push({ var: 'muc#roomconfig_allowpm', type: 'list-single', label: 'Who may send private messages', values: [String(room.config.allowPm)] });
      return undefined;
    }, 50);
  },
};
