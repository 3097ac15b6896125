// Whose presence is broadcast (muc#roomconfig_presencebroadcast). 'none' is a Prosody extension:
// a joiner also gets the unavailable presence of affiliated users who are not in the room.
import { Element } from '../../../protocol/xml.js';
import { mucUserX, type MucUserItem, type Role } from '../../../protocol/muc.js';
import { badValue } from '../option.js';
import type { RoomFeature } from '../events.js';

const FIELD = 'muc#roomconfig_presencebroadcast';
const ROLES: Role[] = ['moderator', 'participant', 'visitor', 'none'];

export const presenceBroadcast: RoomFeature = {
  name: 'presence-broadcast',
  init(hooks) {
    hooks.option({
      key: 'presenceBroadcast', field: FIELD, type: 'list-multi', label: 'Roles whose presence is broadcast', order: 16,
      options: ROLES.map((value) => ({ value })),
      initial: () => ['moderator', 'participant', 'visitor'],
      write: (c) => [...(c.presenceBroadcast as Role[])],
      read: (c, values) => {
        for (const v of values) if (!(ROLES as string[]).includes(v)) throw badValue(FIELD, `unknown role ${v}`);
        c.presenceBroadcast = ROLES.filter((r) => values.includes(r));
      },
    });
    hooks.on('presence/broadcast', ({ room, role }) => (room.config.presenceBroadcast as Role[]).includes(role));
    hooks.on('occupant/roster', ({ room, occupant, full, out }) => {
      if (!(room.config.presenceBroadcast as Role[]).includes('none')) return undefined;
      // Under their reserved nick; in a semi-anonymous room those without one would give nothing
      // away but their JID, so they are left out.
      const present = new Set([...room.occupants.values()].map((o) => o.bare));
      const withJid = room.seesJids(occupant);
      for (const [bare, affiliation] of room.affiliations) {
        if (present.has(bare) || affiliation === 'outcast') continue;
        const nick = room.nicks.get(bare);
        if (!nick && !withJid) continue;
        const p = new Element('presence', { from: nick ? `${room.jid}/${nick}` : room.jid, type: 'unavailable' });
        const item: MucUserItem = { affiliation, role: 'none' };
        if (nick) item.nick = nick;
        if (withJid) item.jid = bare;
        p.append(mucUserX({ items: [item] }));
        out.push([full, p.toString()]);
      }
      return undefined;
    });
  },
};
