// Self-ping (XEP-0410): a client pings its own occupant JID to learn whether it is still in the room;
// the room answers itself instead of relaying it (muc#self-ping-optimization). The room JID answers pings too.
import { Element } from '../../../protocol/xml.js';
import { NS } from '../../../protocol/namespaces.js';
import type { RoomFeature } from '../events.js';

export const selfPing: RoomFeature = {
  name: 'self-ping',
  init(hooks, ctx) {
    hooks.on('iq/occupant', ({ room, stanza, payload, from, sender, target }) => {
      if (target !== sender || !payload?.is('ping', NS.ping)) return undefined;
      ctx.server.router.route(new Element('iq', { type: 'result', id: stanza.attrs.id ?? '', from: `${room.jid}/${target.nick}`, to: from.toString() }));
      return true;
    });
    hooks.iq('get', NS.ping, ({ reply }) => reply());
    hooks.on('disco/info', ({ features }) => { features.push(NS.mucSelfPing); return undefined; }, 60);
  },
};
