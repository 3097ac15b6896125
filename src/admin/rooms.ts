// Room administration. A live room is changed only by the node that holds it, in the room's order: each
// operation is an XEP-0045 owner or admin request from the server's own JID (an owner of every room),
// routed like any stanza (lease, load or forward) and answered back to the node that asked. So the room
// applies it exactly as it would an owner's, and a room that cannot do it says why and changes nothing.
import { Element } from '../../protocol/xml.js';
import { tryParseJid, type Jid } from '../../protocol/jid.js';
import { parseStanzaError } from '../../protocol/errors.js';
import { AFFILIATIONS, adminQuery, destroyQuery, isAffiliation, type AdminItem } from '../../protocol/muc.js';
import type { Server } from '../context.js';
import { mucServices } from '../muc/module.js';
import {
  AdminError, isAdminActor, one, outcome, type AdminCommand, type AnyAdminCommand, type AdminContext, type AdminInput, type FieldSpec, type Outcome,
} from './command.js';

/** How long a room may take to answer (it may first be loaded, or live on another node). */
const ROOM_TIMEOUT_MS = 15_000;

const ROOM_FIELD: FieldSpec = { name: 'room', type: 'jid-single', label: 'The room (name@service)', required: true };

/** The room's bare JID on one of this server's MUC services, or a usage error. */
function roomJid(server: Server, input: AdminInput): Jid {
  const raw = one(input, 'room').trim();
  const jid = tryParseJid(raw);
  if (!jid || !jid.local || jid.resource) throw new AdminError(`${raw}: not a room JID (name@service)`);
  if (!mucServices(server).has(jid.domain)) throw new AdminError(`${jid.domain} is not a MUC service of this server`);
  return jid;
}

/**
 * Sends one owner request to the room and turns the answer into an outcome; a change the room made is
 * logged with what the log record should say of it.
 */
async function askRoom(ctx: AdminContext, room: Jid, payload: Element, done: string, logged: Record<string, string>): Promise<Outcome> {
  const server = ctx.server!;
  const iq = new Element('iq', { type: 'set', to: room.toString(), from: server.domain }).append(payload);
  const reply = await server.request(iq, ROOM_TIMEOUT_MS);
  if (!reply) return { ok: false, text: `${room}: the room did not answer in ${ROOM_TIMEOUT_MS / 1000} s; nothing is known to have changed` };
  if (reply.attrs.type !== 'result') {
    const err = parseStanzaError(reply);
    const why = err?.condition === 'item-not-found' ? 'no such room' : (err?.text ?? err?.condition ?? 'refused');
    return { ok: false, text: `${room}: ${why}` };
  }
  server.log.info('room changed by admin', { room: room.toString(), ...logged, actor: ctx.actor.kind });
  return { ok: true, text: done };
}

export const destroyRoomCommand: AdminCommand<Outcome> = {
  id: 'room-destroy', title: 'Destroy a Room',
  instructions: 'The occupants leave with the reason (and an alternate room, if given); the room and its configuration are removed.',
  fields: [
    ROOM_FIELD,
    { name: 'reason', type: 'text-single', label: 'Reason, shown to the occupants' },
    { name: 'venue', type: 'jid-single', label: 'Alternate room for the occupants' },
  ],
  needsServer: true,
  allowed: isAdminActor,
  async run(ctx, input) {
    const room = roomJid(ctx.server!, input);
    const venue = one(input, 'venue').trim();
    if (venue && !tryParseJid(venue)) throw new AdminError(`${venue}: not a JID`);
    const reason = one(input, 'reason');
    return askRoom(ctx, room, destroyQuery({ jid: venue || undefined, reason: reason || undefined }), `${room} destroyed`, { op: 'destroy' });
  },
  render: outcome,
};

export const setRoomAffiliationCommand: AdminCommand<Outcome> = {
  id: 'room-set-affiliation', title: 'Set Affiliations in a Room',
  instructions: 'Makes the users owners, admins, members or outcasts (banned) of the room, or removes their affiliation (none). All or nothing.',
  fields: [
    ROOM_FIELD,
    { name: 'jids', type: 'jid-multi', label: 'Users (bare JIDs)', required: true },
    {
      name: 'affiliation', type: 'list-single', label: 'Affiliation', required: true,
      options: AFFILIATIONS.map((a) => ({ value: a })),
    },
    { name: 'reason', type: 'text-single', label: 'Reason' },
  ],
  needsServer: true,
  allowed: isAdminActor,
  async run(ctx, input) {
    const room = roomJid(ctx.server!, input);
    const affiliation = one(input, 'affiliation');
    if (!isAffiliation(affiliation)) throw new AdminError(`unknown affiliation ${affiliation} (${AFFILIATIONS.join(', ')})`);
    const reason = one(input, 'reason') || undefined;
    const items: AdminItem[] = (input.jids ?? []).map((raw) => {
      const j = tryParseJid(raw.trim());
      if (!j || j.resource) throw new AdminError(`${raw}: not a bare JID`);
      return { jid: j.bareString(), affiliation, reason };
    });
    const who = items.map((i) => i.jid).join(', ');
    return askRoom(ctx, room, adminQuery(items), `${who}: ${affiliation} in ${room}`, { op: 'set-affiliation', jids: who, affiliation });
  },
  render: outcome,
};

export const roomCommands: AnyAdminCommand[] = [destroyRoomCommand, setRoomAffiliationCommand];
