// Voice requests (XEP-0045 §8.6, muc#roomconfig_allowvoicerequests): a visitor asks for voice with a
// muc#request form; moderators get an approval form and grant voice by submitting it.
import { Element } from '../../../protocol/xml.js';
import { NS } from '../../../protocol/namespaces.js';
import { parseForm, buildForm, formType, formValue, type DataForm } from '../../../protocol/forms.js';
import { MUC_NS, MucProtocolError } from '../../../protocol/muc.js';
import { bool } from '../option.js';
import type { RoomFeature } from '../events.js';

export const voiceRequest: RoomFeature = {
  name: 'voice-request',
  init(hooks) {
    hooks.option(bool('voiceRequests', 'muc#roomconfig_allowvoicerequests', 'Allow visitors to request voice', 10, true));
    hooks.on('message/normal', ({ room, stanza, occupant: occ }) => {
      const formEl = stanza.getChild('x', NS.dataForms);
      if (!formEl) return undefined;
      let form: DataForm;
      try { form = parseForm(formEl); } catch { throw new MucProtocolError('bad-request', 'malformed form'); }
      if (formType(form) !== MUC_NS.request) throw new MucProtocolError('bad-request', 'unknown form');
      if (!occ) throw new MucProtocolError('not-acceptable', 'only occupants may request voice');
      const allow = formValue(form, 'muc#request_allow');
      if (occ.role === 'moderator' && form.type === 'submit' && allow !== undefined) {
        const nick = formValue(form, 'muc#roomnick');
        const target = nick ? room.occupants.get(nick) : undefined;
        if (!target) throw new MucProtocolError('item-not-found', 'no such occupant');
        if ((allow === '1' || allow === 'true') && target.role === 'visitor') room.setRole(target, 'participant', occ, undefined);
        return true;
      }
      if (!room.config.voiceRequests) throw new MucProtocolError('forbidden', 'voice requests are disabled');
      if (occ.role !== 'visitor') return true;
      const approval = buildForm({
        type: 'form', title: 'Voice request', fields: [
          { var: 'FORM_TYPE', type: 'hidden', values: [MUC_NS.request] },
          { var: 'muc#role', type: 'list-single', label: 'Requested role', values: ['participant'] },
          { var: 'muc#jid', type: 'jid-single', label: 'User ID', values: [occ.primary] },
          { var: 'muc#roomnick', type: 'text-single', label: 'Room Nickname', values: [occ.nick] },
          { var: 'muc#request_allow', type: 'boolean', label: 'Grant voice to this person?', values: ['false'] },
        ],
      });
      room.send(room.sessions((o) => o.role === 'moderator'), new Element('message', { from: room.jid }).append(approval).toString(), 'message');
      return true;
    });
    hooks.on('disco/info', ({ features }) => { features.push(MUC_NS.request); return undefined; }, 50);
  },
};
