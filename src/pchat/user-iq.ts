// What a user asks the MUC service about their own place in the persistent-chat model:
// urn:x-perch:assoc:0 (the rooms where they are member, manager or presenter, by the rules, and
// the categories where they may create) and urn:x-perch:invitations:0 (their invitations after
// a given id, to catch up on the ones not seen).
import { Element } from '../../protocol/xml.js';
import { StanzaError } from '../../protocol/errors.js';
import type { Module } from '../context.js';
import { mucServices } from '../muc/module.js';
import { chatModel } from './module.js';
import { serverOpContext } from './operations.js';
import { associations } from './settings-ops.js';

export const ASSOC_NS = 'urn:x-perch:assoc:0';
export const INVITATIONS_NS = 'urn:x-perch:invitations:0';
/** Invitations per answer when the request names no max (and at most). */
const INVITATION_PAGE = 100;

export const chatUserIqModule: Module = {
  name: 'chat-user-iq',
  init(server) {
    for (const service of mucServices(server).values()) {
      service.serviceIq(ASSOC_NS, async ({ type, from }) => {
        if (type !== 'get') throw new StanzaError('bad-request', 'associations are read with a get');
        const a = await associations(serverOpContext(server), service.domain, from.bareString());
        const q = new Element('query', { xmlns: ASSOC_NS });
        for (const { room, member, manager, presenter } of a.rooms) {
          q.c('room', {
            jid: `${room.room}@${room.service}`, name: room.name, category: room.category,
            member: String(member), manager: String(manager), presenter: String(presenter),
          });
        }
        for (const c of a.categories) q.c('category', { name: c.name, ...(c.description ? { description: c.description } : {}) });
        return q;
      });
      service.serviceIq(INVITATIONS_NS, async ({ type, payload, from }) => {
        if (type !== 'get') throw new StanzaError('bad-request', 'invitations are read with a get');
        const after = Number(payload.attrs.after ?? '0');
        const max = payload.attrs.max === undefined ? INVITATION_PAGE : Number(payload.attrs.max);
        if (!Number.isSafeInteger(after) || after < 0) throw new StanzaError('bad-request', 'after is an invitation id (a whole number)');
        if (!Number.isSafeInteger(max) || max < 1) throw new StanzaError('bad-request', 'max is a positive whole number');
        const list = await server.stores.chat.invitations(from.bareString(), after, Math.min(max, INVITATION_PAGE));
        const q = new Element('query', { xmlns: INVITATIONS_NS });
        // Every invitation of the user, whichever service's room: ids page through them all.
        for (const inv of list) {
          const svc = chatModel(server).forService(inv.service);
          q.c('invitation', {
            id: String(inv.id), room: `${inv.room}@${inv.service}`, name: svc?.room(inv.room)?.name ?? inv.room,
            ...(inv.inviter ? { inviter: inv.inviter } : {}), at: inv.at.toISOString(),
          });
        }
        return q;
      });
    }
  },
};
