// Stanzas the room passes between occupants (XEP-0045 §7.5): private messages, and IQs to an
// occupant JID, which the room relays under the sender's occupant JID and whose answers it routes back.
import { randomBytes } from 'node:crypto';
import { Element } from '../../protocol/xml.js';
import type { Jid } from '../../protocol/jid.js';
import { MUC_NS, MucProtocolError } from '../../protocol/muc.js';
import type { Room } from './room.js';
import type { Occupant } from './occupants.js';

/** IQs in flight, per room: our id → the original requester, its id, and the occupant asked. */
const inFlight = new WeakMap<Room, Map<string, { from: string; id: string; to: string }>>();

function proxiedOf(room: Room): Map<string, { from: string; id: string; to: string }> {
  let m = inFlight.get(room);
  if (!m) inFlight.set(room, m = new Map());
  return m;
}

export function privateMessage(room: Room, stanza: Element, occ: Occupant | undefined, nick: string, type: string): void {
  if (!occ) throw new MucProtocolError('not-acceptable', 'only occupants may send private messages');
  const target = room.occupants.get(nick);
  if (!target) throw new MucProtocolError('item-not-found', 'no such occupant');
  if (type === 'groupchat') throw new MucProtocolError('bad-request', 'groupchat messages go to the room');
  room.hooks.check('message/private', { room, from: occ, to: target, stanza });
  const out = new Element('message', { ...stanza.attrs, from: `${room.jid}/${occ.nick}` });
  delete out.attrs.to;
  for (const c of stanza.children) if (typeof c !== 'string' && c.ns !== MUC_NS.occupantId) out.children.push(c);
  // §7.5: the recipient can tell a private message through a room from a direct one.
  if (!out.getChild('x', MUC_NS.user)) out.c('x', { xmlns: MUC_NS.user });
  room.hooks.build('message/build', { room, occupant: occ, stanza, subject: undefined, body: stanza.getChild('body'), out });
  room.send([...target.sessions.keys()], out.toString(), 'message');
}

/** IQs to an occupant JID: a feature may answer (self-ping), others are relayed to the occupant. */
export function occupantIq(room: Room, stanza: Element, from: Jid, nick: string): void {
  const proxied = proxiedOf(room);
  const type = stanza.attrs.type;
  const sender = room.byRealJid.get(from.toString());
  if (type === 'result' || type === 'error') {
    const p = proxied.get(stanza.attrs.id ?? '');
    if (!p || p.to !== from.toString()) return;
    proxied.delete(stanza.attrs.id ?? '');
    const relay = new Element('iq', { ...stanza.attrs, id: p.id, from: `${room.jid}/${sender?.nick ?? nick}`, to: p.from });
    relay.children = stanza.children;
    room.server.router.route(relay);
    return;
  }
  if (!sender) throw new MucProtocolError('not-acceptable', 'you are not an occupant of this room');
  const target = room.occupants.get(nick);
  if (!target) throw new MucProtocolError('item-not-found', 'no such occupant');
  if (room.hooks.decide('iq/occupant', { room, stanza, payload: stanza.elements()[0], from, sender, target })) return;
  const to = target.primary;
  const id = randomBytes(8).toString('hex');
  proxied.set(id, { from: from.toString(), id: stanza.attrs.id ?? '', to });
  if (proxied.size > 1000) proxied.delete(proxied.keys().next().value as string);
  const relay = new Element('iq', { type: type ?? 'get', id, from: `${room.jid}/${sender.nick}`, to });
  relay.children = stanza.children;
  room.server.router.route(relay);
}
