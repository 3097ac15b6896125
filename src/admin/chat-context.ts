// What the persistent-chat admin commands share: the operations' context built from the admin
// context (with or without a running server), the actor as the rules see it, refusals as admin
// errors, list-edit and boolean inputs, and aligned tables for a terminal.
import { Element } from '../../protocol/xml.js';
import { destroyQuery } from '../../protocol/muc.js';
import { PrincipalError, parseListEdit } from '../../protocol/principal.js';
import { ChatOpError, ensureStoredMucRoom, serverOpContext, type ChatActor, type ChatOpContext, type ListChange } from '../pchat/operations.js';
import { encodeClusterMessage } from '../cluster-message.js';
import { broadcastToNodes } from '../../storage/session-redis.js';
import { CHAT_TOPIC } from '../pchat/model.js';
import { AdminError, isAdminActor, one, type Actor, type AdminContext, type AdminInput, type FieldSpec } from './command.js';

/** How long a room may take to answer a destroy (it may first be loaded, or live on another node). */
const ROOM_TIMEOUT_MS = 15_000;

const contexts = new WeakMap<AdminContext, ChatOpContext>();

/** The operations' context for an admin context: the server's model when one runs, else built from the stores. */
export function chatContext(ctx: AdminContext): ChatOpContext {
  const known = contexts.get(ctx);
  if (known) return known;
  const server = ctx.server;
  const admins = new Set(ctx.config.admins);
  const c: ChatOpContext = server
    ? {
      ...serverOpContext(server),
      async destroyMucRoom(service, room, reason) {
        // The owner's destroy request from the server's JID, so the node holding the room ejects its occupants.
        const iq = new Element('iq', { type: 'set', to: `${room}@${service}`, from: server.domain }).append(destroyQuery({ reason }));
        const reply = await server.request(iq, ROOM_TIMEOUT_MS);
        if (!reply) throw new AdminError(`${room}@${service}: the room did not answer in ${ROOM_TIMEOUT_MS / 1000} s; nothing was deleted`, 'service-unavailable');
        // An error answer is a room with no XEP-0045 record (never joined): nothing to destroy.
      },
    }
    : {
      stores: ctx.stores,
      model: null,
      domain: ctx.domain,
      services: (ctx.config.muc.services ?? []).map((s) => s.domain),
      isAdmin: (bare) => admins.has(bare),
      ensureMucRoom: (service, room, name, description) => ensureStoredMucRoom(ctx.stores, service, room, name, description),
      // Nodes of a cluster that share the database but not this data directory hear the change on Redis.
      ...(ctx.config.redisUrl ? {
        broadcast: async (change) => {
          await broadcastToNodes(ctx.config.redisUrl!, encodeClusterMessage(CHAT_TOPIC, { ...change, origin: 'offline' }));
        },
      } satisfies Partial<ChatOpContext> : {}),
    };
  contexts.set(ctx, c);
  return c;
}

export function chatActor(actor: Actor): ChatActor {
  return actor.kind === 'local' ? { kind: 'local' } : { kind: 'account', bare: actor.jid.bareString() };
}

/** Runs an operation, turning its refusal into the admin error the faces report. */
export async function op<R>(fn: () => Promise<R>): Promise<R> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ChatOpError) throw new AdminError(e.message, e.condition);
    if (e instanceof PrincipalError) throw new AdminError(e.message);
    throw e;
  }
}

/** Admins; and, on a MUC service's JID, any account (the operation decides: managers on their rooms, creators in their categories). */
export function adminsOrServiceAccounts(actor: Actor): boolean {
  return isAdminActor(actor) || (actor.kind === 'account' && actor.service !== undefined);
}

/** The service an input names, else the MUC service the command was sent to, else none (the only one). */
export function serviceInput(ctx: AdminContext, input: AdminInput): string | null {
  const named = one(input, 'service').trim();
  if (named) return named;
  return ctx.actor.kind === 'account' && ctx.actor.service ? ctx.actor.service : null;
}

export const SERVICE_FIELD: FieldSpec = { name: 'service', type: 'jid-single', label: 'MUC service (when the server has several)' };

/** A principal list field: `a,b` replaces, `+a,-b` edits, an empty value clears. */
export function listField(name: string, label: string): FieldSpec {
  return { name, type: 'text-multi', label: `${label} (principals: user@domain, group:NAME, ou:/PATH, domain:DOMAIN; a,b replaces, +a,-b edits, '' clears)` };
}

/** The list change an input asks for, or undefined when the field was not given. */
export function listInput(input: AdminInput, name: string): ListChange | undefined {
  const values = input[name];
  if (!values || values.length === 0) return undefined;
  let edit;
  try {
    edit = parseListEdit(values);
  } catch (e) {
    if (e instanceof PrincipalError) throw new AdminError(`--${name}: ${e.message}`);
    throw e;
  }
  if (edit.clear) return { replace: null };
  if (edit.replace) return { replace: edit.replace };
  return { add: edit.add, remove: edit.remove };
}

/** A multi-line text field as one string, or undefined when not given. */
export function textInput(input: AdminInput, name: string): string | undefined {
  const values = input[name];
  return values && values.length > 0 ? values.join('\n') : undefined;
}

/** A single text field, or undefined when not given. */
export function optionalInput(input: AdminInput, name: string): string | undefined {
  const values = input[name];
  return values && values.length > 0 ? values[0] : undefined;
}

const TRUE = new Set(['1', 'true', 'on', 'yes']);
const FALSE = new Set(['0', 'false', 'off', 'no']);

export function boolField(name: string, label: string): FieldSpec {
  return { name, type: 'boolean', label: `${label} (on|off)` };
}

/** A boolean field (on/off, true/false, 1/0, yes/no), or undefined when not given. */
export function boolInput(input: AdminInput, name: string): boolean | undefined {
  const v = optionalInput(input, name)?.trim().toLowerCase();
  if (v === undefined || v === '') return undefined;
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new AdminError(`--${name} takes on or off, not ${v}`);
}

export function intInput(input: AdminInput, name: string): number | undefined {
  const v = optionalInput(input, name)?.trim();
  if (v === undefined || v === '') return undefined;
  if (!/^-?\d+$/.test(v)) throw new AdminError(`--${name} takes a whole number, not ${v}`);
  return Number(v);
}

/** Rows as aligned columns under a header. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** A principal list as one cell. */
export function listCell(list: readonly string[] | null, unset = '(inherit)'): string {
  if (list === null) return unset;
  return list.length === 0 ? '-' : list.join(',');
}

export const onOff = (b: boolean): string => (b ? 'on' : 'off');
