// Persistent-chat rooms on the admin layer: add, set, show, list, disable, enable, delete. Admins do
// everything; on a MUC service's JID a room's managers change their own rooms (not the category,
// unless they may create in the target; disable but not enable) and creators add rooms.
import type { ChatRoomRecord, RoomKind, RoomPrivacy } from '../../storage/types.js';
import {
  createRoom, deleteRoom, disableRoom, enableRoom, listRooms, showRoom, updateRoom, type RoomChanges, type RoomFilter, type RoomUpdate,
} from '../pchat/operations.js';
import { AdminError, isAdminActor, one, type AdminCommand, type AdminInput, type AnyAdminCommand, type FieldSpec, type Rendered } from './command.js';
import {
  SERVICE_FIELD, adminsOrServiceAccounts, boolField, boolInput, chatActor, chatContext, intInput, listCell, listField, listInput, onOff, op,
  optionalInput, serviceInput, table, textInput,
} from './chat-context.js';

const ROOM: FieldSpec = { name: 'room', type: 'text-single', label: 'Room: the localpart of its JID (or the full JID when there are several services)', required: true, positional: 0 };
const PRIVACY: FieldSpec = { name: 'privacy', type: 'list-single', label: 'Privacy', options: [{ value: 'open' }, { value: 'closed' }, { value: 'secret' }] };
const TYPE: FieldSpec = { name: 'type', type: 'list-single', label: 'Type', options: [{ value: 'normal' }, { value: 'auditorium' }] };
const INVITATIONS: FieldSpec = { name: 'invitations', type: 'list-single', label: 'Invitations to new members', options: [{ value: 'inherit' }, { value: 'off' }] };

const SETTINGS: FieldSpec[] = [
  { name: 'name', type: 'text-single', label: 'Display name (at most 256 characters; default: the localpart)' },
  { name: 'description', type: 'text-multi', label: 'Description (at most 256 characters)' },
  PRIVACY, TYPE, INVITATIONS,
  { name: 'addin', type: 'text-single', label: "Add-in shown in the room ('none' for none)" },
  listField('members', "Members ('' clears: the room inherits the category's scope)"),
  listField('managers', 'Managers'),
  listField('presenters', 'Presenters (auditorium rooms; must be members)'),
];

function choice<T extends string>(input: AdminInput, name: string, values: readonly T[]): T | undefined {
  const v = optionalInput(input, name)?.trim().toLowerCase();
  if (v === undefined || v === '') return undefined;
  if (!(values as readonly string[]).includes(v)) throw new AdminError(`--${name} takes ${values.join(', ')}, not ${v}`);
  return v as T;
}

function changesOf(input: AdminInput): RoomChanges {
  const c: RoomChanges = {};
  const name = optionalInput(input, 'name');
  if (name !== undefined) c.name = name;
  const description = textInput(input, 'description');
  if (description !== undefined) c.description = description;
  const category = optionalInput(input, 'category');
  if (category !== undefined) c.category = category;
  const privacy = choice<RoomPrivacy>(input, 'privacy', ['open', 'closed', 'secret']);
  if (privacy) c.privacy = privacy;
  const type = choice<RoomKind>(input, 'type', ['normal', 'auditorium']);
  if (type) c.type = type;
  const invitations = choice(input, 'invitations', ['inherit', 'off'] as const);
  if (invitations) c.invitations = invitations;
  const disabled = boolInput(input, 'disabled');
  if (disabled !== undefined) c.disabled = disabled;
  // 'none' removes the add-in (an empty value reads as not given).
  if (input.addin && input.addin.length > 0) c.addin = /^(none|-)?$/i.test(input.addin[0]!.trim()) ? null : input.addin[0]!;
  for (const list of ['members', 'managers', 'presenters'] as const) {
    const change = listInput(input, list);
    if (change) c[list] = change;
  }
  return c;
}

export function roomLines(r: ChatRoomRecord): string[] {
  return [
    `room:         ${r.room}@${r.service}`,
    `name:         ${r.name}`,
    `description:  ${r.description}`,
    `category:     ${r.category}`,
    `privacy:      ${r.privacy}`,
    `type:         ${r.type}`,
    `invitations:  ${r.invitations}`,
    `disabled:     ${r.disabled ? 'yes' : 'no'}`,
    `add-in:       ${r.addin ?? '-'}`,
    `members:      ${listCell(r.members)}`,
    `managers:     ${listCell(r.managers)}`,
    `presenters:   ${listCell(r.presenters)}`,
  ];
}

function shown(r: ChatRoomRecord, note: string, extra: string[] = []): Rendered {
  return {
    notes: [{ type: 'info', text: note }, ...extra.map((text) => ({ type: 'warn' as const, text }))],
    fields: [{ var: 'room', type: 'text-multi', label: 'Room', values: roomLines(r) }],
    lines: roomLines(r),
  };
}

function updated(verb: string): (u: RoomUpdate) => Rendered {
  return (u) => shown(u.after, `${u.after.room}@${u.after.service} ${verb}`, [
    ...(u.dropped.length ? [`dropped (outside the new scope): ${u.dropped.join('; ')}`] : []),
    ...(u.invited ? [`${u.invited} new member(s) invited`] : []),
  ]);
}

const ctxOf = (ctx: Parameters<AnyAdminCommand['run']>[0], input: AdminInput) =>
  ({ c: chatContext(ctx), actor: chatActor(ctx.actor), service: serviceInput(ctx, input), room: one(input, 'room') });

export const roomAddCommand: AdminCommand<ChatRoomRecord> = {
  id: 'room-add', title: 'Create a Chat Room',
  instructions: 'Creates a room in a category (closed by default). An account that creates it becomes its manager and, unless open, a member.',
  fields: [ROOM, { name: 'category', type: 'text-single', label: 'Category', required: true }, ...SETTINGS, boolField('disabled', 'Disabled'), SERVICE_FIELD],
  allowed: adminsOrServiceAccounts,
  run: (ctx, input) => op(() => {
    const { c, actor, service, room } = ctxOf(ctx, input);
    const changes = changesOf(input);
    return createRoom(c, actor, service, room, { ...changes, category: changes.category! });
  }),
  render: (r) => shown(r, `${r.room}@${r.service} created`),
};

export const roomSetCommand: AdminCommand<RoomUpdate> = {
  id: 'room-set', title: 'Change a Chat Room',
  instructions: 'Changes only the fields given. Moving to another category drops every listed principal its scope excludes.',
  fields: [ROOM, { name: 'category', type: 'text-single', label: 'Move to this category' }, ...SETTINGS, SERVICE_FIELD],
  allowed: adminsOrServiceAccounts,
  run: (ctx, input) => op(() => {
    const { c, actor, service, room } = ctxOf(ctx, input);
    return updateRoom(c, actor, service, room, changesOf(input));
  }),
  render: updated('changed'),
};

export const roomShowCommand: AdminCommand<ChatRoomRecord> = {
  id: 'room-show', title: 'Show a Chat Room',
  instructions: "A room's settings and lists.",
  fields: [ROOM, SERVICE_FIELD],
  allowed: adminsOrServiceAccounts,
  run: (ctx, input) => op(() => {
    const { c, actor, service, room } = ctxOf(ctx, input);
    return showRoom(c, actor, service, room);
  }),
  render: (r) => ({ notes: [], fields: [{ var: 'room', type: 'text-multi', label: 'Room', values: roomLines(r) }], lines: roomLines(r) }),
};

/** A room as listed: its settings and its archive's size in bytes. */
export type ListedRoom = ChatRoomRecord & { contentBytes: number };

/** Bytes as a terminal reads them: B, KB or MB (1024-based, as --content-larger counts). */
function contentSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export const roomListCommand: AdminCommand<ListedRoom[]> = {
  id: 'room-list', title: 'List Chat Rooms',
  instructions: 'Admins see every room, managers the rooms they manage; the filters narrow the list.',
  fields: [
    { name: 'category', type: 'text-single', label: 'Only rooms of this category' },
    { name: 'member', type: 'jid-single', label: 'Only rooms this user is a member of' },
    { name: 'manager', type: 'jid-single', label: 'Only rooms this user manages' },
    boolField('disabled', 'Only disabled (on) or enabled (off) rooms'),
    PRIVACY, TYPE,
    { name: 'addin', type: 'text-single', label: 'Only rooms showing this add-in' },
    { name: 'filter', type: 'text-single', label: 'Name or description contains (* wildcards)' },
    INVITATIONS,
    { name: 'content-larger', type: 'text-single', label: 'Only rooms whose chat content is larger than this many MB' },
    { name: 'limit', type: 'text-single', label: 'At most this many rooms' },
    SERVICE_FIELD,
  ],
  allowed: adminsOrServiceAccounts,
  run: (ctx, input) => op(async () => {
    const { c, actor, service } = ctxOf(ctx, input);
    const f: RoomFilter = {};
    const str = (n: string) => optionalInput(input, n)?.trim() || undefined;
    if (str('category')) f.category = str('category');
    if (str('member')) f.member = str('member');
    if (str('manager')) f.manager = str('manager');
    const disabled = boolInput(input, 'disabled');
    if (disabled !== undefined) f.disabled = disabled;
    const privacy = choice<RoomPrivacy>(input, 'privacy', ['open', 'closed', 'secret']);
    if (privacy) f.privacy = privacy;
    const type = choice<RoomKind>(input, 'type', ['normal', 'auditorium']);
    if (type) f.type = type;
    if (str('addin')) f.addin = str('addin');
    if (str('filter')) f.filter = str('filter');
    const invitations = choice(input, 'invitations', ['inherit', 'off'] as const);
    if (invitations) f.invitations = invitations;
    const larger = str('content-larger');
    if (larger !== undefined) {
      if (!/^\d+(\.\d+)?$/.test(larger)) throw new AdminError(`--content-larger takes a number of MB, not ${larger}`);
      f.contentLargerThan = Number(larger) * 1024 * 1024;
    }
    const limit = intInput(input, 'limit');
    if (limit !== undefined) {
      if (limit < 0) throw new AdminError('--limit takes a number of at least 0');
      f.limit = limit;
    }
    const rooms = await listRooms(c, actor, service, f);
    const sizes = await ctx.stores.archive.sizes(rooms.map((r) => `${r.room}@${r.service}`));
    return rooms.map((r) => ({ ...r, contentBytes: sizes.get(`${r.room}@${r.service}`)?.bytes ?? 0 }));
  }),
  render(rooms) {
    const lines = table(
      ['ROOM', 'NAME', 'CATEGORY', 'PRIVACY', 'TYPE', 'DISABLED', 'CONTENT', 'MEMBERS', 'MANAGERS', 'PRESENTERS'],
      rooms.map((r) => [r.room, r.name, r.category, r.privacy, r.type, r.disabled ? 'yes' : 'no', contentSize(r.contentBytes), listCell(r.members), listCell(r.managers), listCell(r.presenters)]),
    );
    return { notes: [], fields: [{ var: 'rooms', type: 'text-multi', label: 'Rooms', values: lines }], lines };
  },
};

export const roomDisableCommand: AdminCommand<RoomUpdate> = {
  id: 'room-disable', title: 'Disable a Chat Room',
  instructions: 'Its occupants are removed; it is hidden and refuses joins, keeping its settings and history.',
  fields: [ROOM, SERVICE_FIELD],
  allowed: adminsOrServiceAccounts,
  run: (ctx, input) => op(() => {
    const { c, actor, service, room } = ctxOf(ctx, input);
    return disableRoom(c, actor, service, room);
  }),
  render: updated('disabled'),
};

export const roomEnableCommand: AdminCommand<RoomUpdate> = {
  id: 'room-enable', title: 'Enable a Chat Room',
  instructions: 'A disabled room comes back with its settings and history.',
  fields: [ROOM, SERVICE_FIELD],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => {
    const { c, actor, service, room } = ctxOf(ctx, input);
    return enableRoom(c, actor, service, room);
  }),
  render: updated('enabled'),
};

export const roomDeleteCommand: AdminCommand<string> = {
  id: 'room-delete', title: 'Delete a Chat Room',
  instructions: 'Its occupants leave with the reason; the room, its settings and lists are removed.',
  fields: [ROOM, { name: 'reason', type: 'text-single', label: 'Reason, shown to the occupants' }, SERVICE_FIELD],
  allowed: isAdminActor,
  run: (ctx, input) => op(async () => {
    const { c, actor, service, room } = ctxOf(ctx, input);
    await deleteRoom(c, actor, service, room, one(input, 'reason') || undefined);
    return room;
  }),
  render: (room) => ({ notes: [{ type: 'info', text: `room ${room} deleted` }] }),
};

export const chatRoomCommands: AnyAdminCommand[] = [
  roomAddCommand, roomSetCommand, roomShowCommand, roomListCommand, roomDisableCommand, roomEnableCommand, roomDeleteCommand,
];
