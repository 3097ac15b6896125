// Nick registration (XEP-0045 §7.10, §7.12): affiliated users reserve a nick with jabber:iq:register;
// a reserved nick is theirs alone in the room, and registering makes an unaffiliated user a member.
import { Element } from '../../../protocol/xml.js';
import { NS } from '../../../protocol/namespaces.js';
import { parseForm, buildForm, formType, formValue, type DataForm } from '../../../protocol/forms.js';
import { MucProtocolError, prepareNick } from '../../../protocol/muc.js';
import type { RoomFeature } from '../events.js';
import type { Room } from '../room.js';

function registrationForm(): Element {
  const q = new Element('query', { xmlns: NS.register });
  q.append(buildForm({
    type: 'form', fields: [
      { var: 'FORM_TYPE', type: 'hidden', values: [NS.mucRegister] },
      { var: 'muc#register_roomnick', type: 'text-single', label: 'Nickname', required: true, values: [] },
    ],
  }));
  return q;
}

function mustNotBeReserved(room: Room, nick: string, bare: string): void {
  const reserved = room.nickReservedFor(nick);
  if (reserved && reserved !== bare) throw new MucProtocolError('conflict', 'that nick is reserved');
}

export const register: RoomFeature = {
  name: 'register',
  init(hooks) {
    hooks.on('occupant/pre-join', ({ room, existing, nick, bare }) => {
      if (!existing) mustNotBeReserved(room, nick, bare);
      return undefined;
    }, 30);
    hooks.on('occupant/pre-change', ({ room, occupant, nick }) => { mustNotBeReserved(room, nick, occupant.bare); return undefined; });
    hooks.on('disco/node-info', ({ room, node, from }) => {
      if (node !== 'x-roomuser-item') return undefined;
      // §7.12: the requester's registered nick.
      const q = new Element('query', { xmlns: NS.discoInfo, node });
      const nick = room.nicks.get(from.bareString());
      if (nick) q.c('identity', { category: 'conference', type: 'text', name: nick });
      return q;
    });

    // Registration is for affiliated users (as Prosody does by default); others become members
    // through an admin, so an unaffiliated user cannot reserve a nick on their own.
    hooks.iq('get', NS.register, ({ room, from, reply }) => {
      const aff = room.affiliationOf(from.bareString());
      if (aff === 'none') throw new MucProtocolError('registration-required', 'only affiliated users may register');
      if (aff === 'outcast') throw new MucProtocolError('forbidden', 'you are banned from this room');
      return reply(registrationForm());
    });
    hooks.iq('set', NS.register, ({ room, payload, from, reply }) => {
      const bare = from.bareString();
      const aff = room.affiliationOf(bare);
      if (aff === 'none') throw new MucProtocolError('registration-required', 'only affiliated users may register');
      if (payload.getChild('remove')) {
        if (!room.nicks.has(bare) && aff !== 'member') throw new MucProtocolError('item-not-found', 'you are not registered');
        room.nicks.delete(bare);
        if (aff === 'member') room.setAffiliation(bare, 'none', null, undefined);
        else room.save();
        return reply();
      }
      const formEl = payload.getChild('x', NS.dataForms);
      if (!formEl) throw new MucProtocolError('bad-request', 'expected the registration form');
      let form: DataForm;
      try { form = parseForm(formEl); } catch (e) { throw new MucProtocolError('bad-request', (e as Error).message); }
      if (form.type !== 'submit' || (formType(form) ?? NS.mucRegister) !== NS.mucRegister) throw new MucProtocolError('bad-request', 'expected the registration form');
      const raw = formValue(form, 'muc#register_roomnick');
      const nick = raw === undefined ? null : prepareNick(raw);
      if (!nick) throw new MucProtocolError('not-acceptable', 'a valid nickname is required');
      if (aff === 'outcast') throw new MucProtocolError('forbidden', 'you are banned from this room');
      hooks.check('register/pre', { room, bare, affiliation: aff });
      const holder = room.nickReservedFor(nick);
      const inUse = room.occupants.get(nick);
      if ((holder && holder !== bare) || (inUse && inUse.bare !== bare)) throw new MucProtocolError('conflict', 'that nick is taken');
      room.reserveNick(bare, nick);
      room.save();
      for (const o of room.occupants.values()) if (o.bare === bare) room.broadcastPresence(o, {});
      return reply();
    });
  },
};
