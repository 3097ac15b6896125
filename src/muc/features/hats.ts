// XEP-0317 hats, put on and taken off by a room's owners with ad-hoc commands sent to the room JID.
// Hats show in the wearer's occupant presence and are stored with the room (config key 'hats');
// the persistent-chat policy later uses them for "manager" and "presenter".
import { Jid, tryParseJid } from '../../../protocol/jid.js';
import { StanzaError } from '../../../protocol/errors.js';
import { NS } from '../../../protocol/namespaces.js';
import { formValue, type DataForm } from '../../../protocol/forms.js';
import { registerCommand, handleCommandRequest, type CommandStep } from '../../commands/registry.js';
import type { FeatureContext, RoomFeature } from '../events.js';
import type { Room } from '../room.js';

export interface Hat { uri: string; title: string }

export const HAT_COMMANDS = {
  don: `${NS.hatsCommands}:don`,
  doff: `${NS.hatsCommands}:doff`,
} as const;

function hatForm(title: string, withTitle: boolean): DataForm {
  const fields: DataForm['fields'] = [
    { var: 'FORM_TYPE', type: 'hidden', values: [NS.hatsCommands] },
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

export const hats: RoomFeature = {
  name: 'hats',
  init(hooks, ctx) {
    const worn = new WeakMap<Room, Map<string, Hat[]>>();
    const hatsOf = (room: Room): Map<string, Hat[]> => {
      let m = worn.get(room);
      if (!m) worn.set(room, m = new Map());
      return m;
    };
    const setHats = (room: Room, bare: string, list: Hat[]): void => {
      if (list.length === 0) hatsOf(room).delete(bare); else hatsOf(room).set(bare, list);
      room.save();
      for (const o of room.occupants.values()) if (o.bare === bare) room.broadcastPresence(o, {});
    };
    hooks.on('room/loaded', ({ room, record }) => {
      const stored = record.config.hats;
      if (stored && typeof stored === 'object') for (const [j, h] of Object.entries(stored as Record<string, Hat[]>)) hatsOf(room).set(j, h);
      return undefined;
    });
    hooks.on('room/saving', ({ room, record }) => { record.config.hats = Object.fromEntries(hatsOf(room)); return undefined; });
    hooks.on('presence/build', ({ room, occupant, presence, unavailable }) => {
      const list = worn.get(room)?.get(occupant.bare);
      if (!list || list.length === 0 || unavailable) return undefined;
      const h = presence.c('hats', { xmlns: NS.hats });
      for (const hat of list) h.c('hat', { title: hat.title, uri: hat.uri });
      return undefined;
    }, -10);
    hooks.on('disco/info', ({ features }) => { features.push(NS.hats, NS.commands); return undefined; }, 70);
    hooks.on('disco/items', (ev) => {
      const { room, node, from, items } = ev;
      if (node !== NS.commands) return undefined;
      ev.known = true;
      if (room.affiliationOf(from.bareString()) !== 'owner') return undefined;
      items.push({ jid: room.jid, node: HAT_COMMANDS.don, name: 'Put a hat on a user' }, { jid: room.jid, node: HAT_COMMANDS.doff, name: 'Take a hat off a user' });
      return undefined;
    });
    hooks.iq('set', NS.commands, ({ room, payload, from, reply, fail }) => {
      void handleCommandRequest(ctx.server, ctx.domain, payload, from, tryParseJid(room.jid)!).then(reply, fail);
      return undefined;
    });
    registerHatCommands(ctx, hatsOf, setHats);
  },
};

function registerHatCommands(ctx: FeatureContext, hatsOf: (room: Room) => Map<string, Hat[]>, setHats: (room: Room, bare: string, list: Hat[]) => void): void {
  const ownedRoom = (from: Jid, to: Jid): Room => {
    const room = ctx.loadedRoom(to.local);
    if (!to.local || !room) throw new StanzaError('item-not-found', 'hats are managed on a room JID');
    if (room.affiliationOf(from.bareString()) !== 'owner') throw new StanzaError('forbidden', 'only owners manage hats');
    return room;
  };
  registerCommand(ctx.server, {
    node: HAT_COMMANDS.don, name: 'Put a hat on a user', jid: ctx.domain, allowed: () => true,
    async execute(c): Promise<CommandStep> {
      const room = ownedRoom(c.from, c.to);
      if (c.action === 'execute' && !c.form) return { status: 'executing', form: hatForm('Put a hat on a user', true) };
      const { bare, uri, title } = readUser(c.form);
      const list = (hatsOf(room).get(bare) ?? []).filter((h) => h.uri !== uri);
      setHats(room, bare, [...list, { uri, title }]);
      return { status: 'completed', notes: [{ type: 'info', text: `${bare} now wears ${title}` }] };
    },
  });
  registerCommand(ctx.server, {
    node: HAT_COMMANDS.doff, name: 'Take a hat off a user', jid: ctx.domain, allowed: () => true,
    async execute(c): Promise<CommandStep> {
      const room = ownedRoom(c.from, c.to);
      if (c.action === 'execute' && !c.form) return { status: 'executing', form: hatForm('Take a hat off a user', false) };
      const { bare, uri } = readUser(c.form);
      const list = hatsOf(room).get(bare) ?? [];
      if (!list.some((h) => h.uri === uri)) throw new StanzaError('item-not-found', 'the user does not wear that hat');
      setHats(room, bare, list.filter((h) => h.uri !== uri));
      return { status: 'completed', notes: [{ type: 'info', text: `${bare} took off ${uri}` }] };
    },
  });
}
