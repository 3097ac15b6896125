// The room's service discovery (XEP-0030, XEP-0045 §6.4): identity, features and the muc#roominfo
// form (XEP-0128), each feature adding its part through disco/info; items through disco/items.
import { Element } from '../../protocol/xml.js';
import { StanzaError } from '../../protocol/errors.js';
import { NS } from '../../protocol/namespaces.js';
import { buildForm, type FormField } from '../../protocol/forms.js';
import { MUC_NS } from '../../protocol/muc.js';
import type { RoomFeature } from './events.js';
import type { Room } from './room.js';

/** The room's disco#info query. */
export function roomDiscoInfo(room: Room): Element {
  const identity = { name: room.name };
  const features: string[] = [MUC_NS.muc, MUC_NS.user];
  const fields: FormField[] = [{ var: 'FORM_TYPE', type: 'hidden', values: [MUC_NS.roominfo] }];
  room.hooks.build('disco/info', { room, identity, features, fields });
  const q = new Element('query', { xmlns: NS.discoInfo });
  q.c('identity', { category: 'conference', type: 'text', name: identity.name });
  for (const f of features) q.c('feature', { var: f });
  q.append(buildForm({ type: 'result', fields }));
  return q;
}

export const disco: RoomFeature = {
  name: 'disco',
  init(hooks) {
    hooks.iq('get', NS.discoInfo, ({ room, payload, from, reply }) => {
      const node = payload.attrs.node;
      hooks.check('disco/pre-query', { room, from, node });
      if (!node) return reply(roomDiscoInfo(room));
      const answer = hooks.decide('disco/node-info', { room, node, from });
      if (!answer) throw new StanzaError('item-not-found');
      return reply(answer);
    });
    hooks.iq('get', NS.discoItems, ({ room, payload, from, reply }) => {
      const node = payload.attrs.node;
      hooks.check('disco/pre-query', { room, from, node });
      const ev = { room, node, from, items: [] as { jid: string; node?: string; name?: string }[], known: false };
      room.hooks.build('disco/items', ev);
      const q = new Element('query', { xmlns: NS.discoItems });
      if (node && ev.known) q.attrs.node = node;
      for (const item of ev.items) q.c('item', { ...item });
      return reply(q);
    });
  },
};
