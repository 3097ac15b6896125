// Who sees occupants' real JIDs (muc#roomconfig_whois, XEP-0045 §7.2.4): moderators always, and
// everyone in a non-anonymous room, which says so (100 on entry, 172/173 when it changes).
import { STATUS } from '../../../protocol/muc.js';
import { choice } from '../option.js';
import type { RoomFeature } from '../events.js';

export const whois: RoomFeature = {
  name: 'whois',
  init(hooks) {
    hooks.option(choice('whois', 'muc#roomconfig_whois', 'Who may see occupants\' real JIDs', 14, ['moderators', 'anyone'], 'moderators'));
    hooks.on('occupant/sees-jids', ({ room }) => (room.config.whois === 'anyone' ? true : undefined));
    hooks.on('config/status', ({ room, before, codes }) => {
      if (before.whois !== room.config.whois) codes.push(room.config.whois === 'anyone' ? STATUS.nowNonAnonymous : STATUS.nowSemiAnonymous);
      return undefined;
    });
    hooks.on('disco/info', ({ room, features }) => { features.push(room.config.whois === 'anyone' ? 'muc_nonanonymous' : 'muc_semianonymous'); return undefined; }, 25);
  },
};
