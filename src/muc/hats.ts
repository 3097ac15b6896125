// XEP-0317 hats, put on and taken off by a room's owners with ad-hoc commands sent to the room JID.
// Hats show in the wearer's occupant presence; the persistent-chat policy later uses them for
// "manager" and "presenter".
import { Jid, tryParseJid } from '../../protocol/jid.js';
import { StanzaError } from '../../protocol/errors.js';
import { formValue, type DataForm } from '../../protocol/forms.js';
import type { Server } from '../context.js';
import { registerCommand, type CommandStep } from '../commands/registry.js';
import type { MucService } from './service.js';
import type { Room } from './room.js';

export const HAT_COMMANDS = {
  don: 'urn:xmpp:hats:commands:don',
  doff: 'urn:xmpp:hats:commands:doff',
} as const;

function ownedRoom(service: MucService, from: Jid, to: Jid): Room {
  const room = service.loadedRoom(to.local);
  if (!to.local || !room) throw new StanzaError('item-not-found', 'hats are managed on a room JID');
  if (room.affiliationOf(from.bareString()) !== 'owner') throw new StanzaError('forbidden', 'only owners manage hats');
  return room;
}

function hatForm(title: string, withTitle: boolean): DataForm {
  const fields: DataForm['fields'] = [
    { var: 'FORM_TYPE', type: 'hidden', values: ['urn:xmpp:hats:commands'] },
    { var: 'hats#jid', type: 'jid-single', label: 'User', required: true, values: [] },
    { var: 'hats#uri', type: 'text-single', label: 'Hat URI', required: true, values: [] },
  ];
  if (withTitle) fields.push({ var: 'hats#title', type: 'text-single', label: 'Hat title', values: [] });
  return { type: 'form', title, fields };
}

function readUser(form: DataForm | null): { bare: string; uri: string; title: string } {
  const jid = tryParseJid(form ? formValue(form, 'hats#jid') ?? '' : '');
  const uri = form ? formValue(form, 'hats#uri') ?? '' : '';
  if (!jid || !jid.local || uri === '') throw new StanzaError('bad-request', 'a user JID and a hat URI are required');
  return { bare: jid.bareString(), uri, title: (form && formValue(form, 'hats#title')) || uri };
}

export function registerHatCommands(server: Server, service: MucService): void {
  registerCommand(server, {
    node: HAT_COMMANDS.don, name: 'Put a hat on a user', jid: service.domain, allowed: () => true,
    async execute(ctx): Promise<CommandStep> {
      const room = ownedRoom(service, ctx.from, ctx.to);
      if (ctx.action === 'execute' && !ctx.form) return { status: 'executing', form: hatForm('Put a hat on a user', true) };
      const { bare, uri, title } = readUser(ctx.form);
      const hats = (room.hats.get(bare) ?? []).filter((h) => h.uri !== uri);
      room.setHats(bare, [...hats, { uri, title }]);
      return { status: 'completed', notes: [{ type: 'info', text: `${bare} now wears ${title}` }] };
    },
  });
  registerCommand(server, {
    node: HAT_COMMANDS.doff, name: 'Take a hat off a user', jid: service.domain, allowed: () => true,
    async execute(ctx): Promise<CommandStep> {
      const room = ownedRoom(service, ctx.from, ctx.to);
      if (ctx.action === 'execute' && !ctx.form) return { status: 'executing', form: hatForm('Take a hat off a user', false) };
      const { bare, uri } = readUser(ctx.form);
      const hats = room.hats.get(bare) ?? [];
      if (!hats.some((h) => h.uri === uri)) throw new StanzaError('item-not-found', 'the user does not wear that hat');
      room.setHats(bare, hats.filter((h) => h.uri !== uri));
      return { status: 'completed', notes: [{ type: 'info', text: `${bare} took off ${uri}` }] };
    },
  });
}
