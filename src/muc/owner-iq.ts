// The owner protocol (XEP-0045 §10): the configuration form built from the declared options
// (option.ts) plus config/form, a submitted form read field by field, and destroying the room.
import { Element } from '../../protocol/xml.js';
import { Jid, tryParseJid } from '../../protocol/jid.js';
import { NS } from '../../protocol/namespaces.js';
import { parseForm, buildForm, formType, type DataForm, type FormField } from '../../protocol/forms.js';
import { MUC_NS, STATUS, MucProtocolError, mucUserX, parseDestroy } from '../../protocol/muc.js';
import type { RoomAffiliation } from '../../storage/types.js';
import type { RoomFeature, RoomHooks } from './events.js';
import type { Room } from './room.js';

/** Fields answered in the form but set through the affiliation lists. */
const LIST_FIELDS = { owners: 'muc#roomconfig_roomowners', admins: 'muc#roomconfig_roomadmins' } as const;

function mustOwn(room: Room, from: Jid): void {
  if (room.affiliationOf(from.bareString()) !== 'owner') throw new MucProtocolError('forbidden', 'only owners may do this');
}

function jidList(values: string[]): string[] {
  return values.filter((v) => v !== '').map((v) => {
    const j = tryParseJid(v);
    if (!j) throw new MucProtocolError('jid-malformed', `bad JID: ${v}`);
    return j.bareString();
  });
}

function replaceList(room: Room, affiliation: 'owner' | 'admin', jids: string[]): void {
  for (const [j, a] of [...room.affiliations]) if (a === affiliation && !jids.includes(j)) room.setAffiliation(j, 'none', null, undefined);
  for (const j of jids) if (room.affiliations.get(j) !== affiliation) room.setAffiliation(j, affiliation, null, undefined);
}

function configForm(hooks: RoomHooks, room: Room, from: string): DataForm {
  const fields: FormField[] = [{ var: 'FORM_TYPE', type: 'hidden', values: [MUC_NS.roomconfig] }];
  for (const o of hooks.options) {
    const f: FormField = { var: o.field, type: o.type, label: o.label, values: o.write(room.config) };
    if (o.options) f.options = o.options;
    fields.push(f);
  }
  const listOf = (a: RoomAffiliation) => [...room.affiliations].filter(([, x]) => x === a).map(([j]) => j);
  fields.push({ var: LIST_FIELDS.owners, type: 'jid-multi', label: 'Room owners', values: listOf('owner') });
  fields.push({ var: LIST_FIELDS.admins, type: 'jid-multi', label: 'Room admins', values: listOf('admin') });
  const form: DataForm = { type: 'form', title: `Configuration for ${room.jid}`, fields };
  hooks.build('config/form', { room, form, from });
  return form;
}

export const ownerIq: RoomFeature = {
  name: 'owner-iq',
  init(hooks) {
    hooks.iq('get', MUC_NS.owner, ({ room, from, reply }) => {
      mustOwn(room, from);
      return reply(new Element('query', { xmlns: MUC_NS.owner }).append(buildForm(configForm(hooks, room, from.bareString()))));
    });

    // The answer goes once the change is applied, before the room tells occupants (as Prosody orders them).
    hooks.iq('set', MUC_NS.owner, ({ room, payload, from, reply }) => {
      mustOwn(room, from);
      const destroy = parseDestroy(payload);
      if (destroy) {
        room.destroy(destroy.jid, destroy.reason, destroy.password);
        return reply();
      }
      const formEl = payload.getChild('x', NS.dataForms);
      if (!formEl) throw new MucProtocolError('bad-request', 'expected a data form or destroy');
      let form: DataForm;
      try { form = parseForm(formEl); } catch (e) { throw new MucProtocolError('bad-request', (e as Error).message); }
      if (form.type === 'cancel') {
        // §10.1.3: cancelling the configuration of a new room destroys it.
        if (room.locked) room.destroy(undefined, undefined, undefined);
        return reply();
      }
      if (form.type !== 'submit') throw new MucProtocolError('bad-request', 'expected a submitted form');
      const ft = formType(form);
      if (ft !== undefined && ft !== MUC_NS.roomconfig) throw new MucProtocolError('bad-request', 'not a room configuration form');
      const next: Record<string, unknown> = structuredClone(room.config);
      const extra = new Set<string>();
      let owners: string[] | null = null;
      let admins: string[] | null = null;
      for (const field of form.fields) {
        if (!field.var || field.var === 'FORM_TYPE') continue;
        const option = hooks.optionFor(field.var);
        if (option) { option.read(next, field.values); continue; }
        if (field.var === LIST_FIELDS.owners) { owners = jidList(field.values); continue; }
        if (field.var === LIST_FIELDS.admins) { admins = jidList(field.values); continue; }
        extra.add(field.var);
      }
      // Fields that config/form handlers add are theirs to read (config/submitted); anything else is unknown.
      if (extra.size > 0) {
        const known = new Set<string>();
        const probe: DataForm = { type: 'form', fields: [] };
        hooks.build('config/form', { room, form: probe });
        for (const f of probe.fields) if (f.var) known.add(f.var);
        for (const v of extra) if (!known.has(v)) throw new MucProtocolError('bad-request', `unknown configuration field: ${v}`);
      }
      hooks.check('config/submitted', { room, form, next });
      if (owners !== null && owners.length === 0) throw new MucProtocolError('conflict', 'a room must keep an owner');

      const before = room.config;
      room.config = next;
      room.locked = false;
      if (owners !== null) replaceList(room, 'owner', owners);
      if (admins !== null) replaceList(room, 'admin', admins);
      room.save();
      reply();
      const codes: number[] = [];
      hooks.build('config/status', { room, before, codes });
      const changed = hooks.options.some((o) => JSON.stringify(o.write(before)) !== JSON.stringify(o.write(next)));
      if (changed) codes.unshift(STATUS.configChanged);
      if (codes.length > 0) {
        const msg = new Element('message', { from: room.jid, type: 'groupchat' }).append(mucUserX({ statuses: codes }));
        room.send(room.sessions(), msg.toString(), 'message');
      }
      hooks.after('config/changed', { room, before });
      return undefined;
    });
  },
};
