// Password-protected rooms (muc#roomconfig_passwordprotectedroom and _roomsecret, XEP-0045 §7.2.5):
// entry needs the password (server admins excepted), and invitations carry it.
import { formValue } from '../../../protocol/forms.js';
import { MucProtocolError } from '../../../protocol/muc.js';
import { parseBool } from '../option.js';
import type { RoomFeature } from '../events.js';

const PROTECTED = 'muc#roomconfig_passwordprotectedroom';

export const password: RoomFeature = {
  name: 'password',
  init(hooks, ctx) {
    hooks.option({
      // Read together with the secret (config/submitted below): turning protection off clears the password.
      key: 'password', field: PROTECTED, type: 'boolean', label: 'Password protected', order: 11,
      initial: () => '',
      write: (c) => [c.password ? '1' : '0'],
      read: (_c, values) => { parseBool(PROTECTED, values); },
    });
    hooks.option({
      key: 'password', field: 'muc#roomconfig_roomsecret', type: 'text-private', label: 'Password', order: 12,
      initial: () => '',
      write: (c) => [String(c.password)],
      read: (c, values) => { c.password = values[0] ?? ''; },
    });
    hooks.on('config/submitted', ({ form, next }) => {
      const flag = formValue(form, PROTECTED);
      if (flag === '0' || flag === 'false') next.password = '';
      if (next.password === '' && (flag === '1' || flag === 'true')) {
        throw new MucProtocolError('not-acceptable', 'a password-protected room needs a password');
      }
      return undefined;
    });
    hooks.on('occupant/pre-join', ({ room, request, bare }) => {
      if (room.config.password && (request?.password ?? '') !== room.config.password && !ctx.server.isAdmin(bare)) {
        throw new MucProtocolError('not-authorized', 'a password is required');
      }
      return undefined;
    }, 10);
    hooks.on('invite/build', ({ room, invite }) => {
      if (room.config.password) invite.password = String(room.config.password);
      return undefined;
    });
    hooks.on('disco/info', ({ room, features }) => { features.push(room.config.password ? 'muc_passwordprotected' : 'muc_unsecured'); return undefined; }, 20);
  },
};
