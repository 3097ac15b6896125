// The occupant limit (muc#roomconfig_maxusers): a full room turns newcomers away (§7.2.10), except
// admins and owners.
import { MucProtocolError } from '../../../protocol/muc.js';
import { badValue } from '../option.js';
import type { RoomFeature } from '../events.js';
import { AFF_RANK } from '../membership.js';

const FIELD = 'muc#roomconfig_maxusers';

export const maxUsers: RoomFeature = {
  name: 'max-users',
  init(hooks) {
    hooks.option({
      key: 'maxUsers', field: FIELD, type: 'list-single', label: 'Maximum number of occupants', order: 13,
      options: ['none', '10', '20', '30', '50', '100', '500', '1000'].map((value) => ({ value })),
      initial: () => 0,
      write: (c) => [c.maxUsers === 0 ? 'none' : String(c.maxUsers)],
      read: (c, values) => {
        const v = values[0] ?? 'none';
        if (v === 'none' || v === '' || v === '0') { c.maxUsers = 0; return; }
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw badValue(FIELD, 'a positive number or none');
        c.maxUsers = n;
      },
    });
    hooks.on('occupant/pre-join', ({ room, existing, affiliation }) => {
      const max = room.config.maxUsers as number;
      if (!existing && max > 0 && room.occupants.size >= max && AFF_RANK[affiliation] < AFF_RANK.admin) {
        throw new MucProtocolError('service-unavailable', 'the room is full');
      }
      return undefined;
    }, 20);
  },
};
