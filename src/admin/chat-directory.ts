// The directory on the admin layer: groups (nested, with members), org units, and a user's org
// unit. Admins only. Every change is heard by every node: rooms re-check their occupants.
import type { GroupRecord, GroupSummary, OrgUnitRecord } from '../../storage/types.js';
import {
  addOrgUnit, createGroup, deleteGroup, deleteOrgUnit, listGroups, listOrgUnits, setUserOrgUnit, showGroup, updateGroup,
} from '../pchat/directory-ops.js';
import { AdminError, isAdminActor, one, type AdminCommand, type AnyAdminCommand, type FieldSpec, type Rendered } from './command.js';
import { chatActor, chatContext, listCell, listInput, op, table, textInput } from './chat-context.js';

const GROUP: FieldSpec = { name: 'group', type: 'text-single', label: 'Group name', required: true, positional: 0 };
const DESCRIPTION: FieldSpec = { name: 'description', type: 'text-multi', label: 'Description (at most 256 characters)' };
const MEMBERS: FieldSpec = { name: 'members', type: 'text-multi', label: "Members: users and groups (user@domain, group:NAME; a,b replaces, +a,-b edits, '' clears)" };
const PATH: FieldSpec = { name: 'path', type: 'text-single', label: 'Org unit path (/corp/emea/sales)', required: true, positional: 0 };

function groupLines(g: GroupRecord): string[] {
  return [`group:        group:${g.name}`, `description:  ${g.description}`, `members:      ${listCell(g.members)}`];
}
const groupShown = (verb: string) => (g: GroupRecord): Rendered => ({
  notes: verb ? [{ type: 'info', text: `group:${g.name} ${verb}` }] : [],
  fields: [{ var: 'group', type: 'text-multi', label: 'Group', values: groupLines(g) }],
  lines: groupLines(g),
});

export const groupAddCommand: AdminCommand<GroupRecord> = {
  id: 'group-add', title: 'Create a Group',
  instructions: 'A group of users and other groups (nested); lists name it as group:NAME.',
  fields: [GROUP, DESCRIPTION, MEMBERS],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => createGroup(chatContext(ctx), chatActor(ctx.actor), one(input, 'group'), {
    description: textInput(input, 'description'), members: listInput(input, 'members'),
  })),
  render: groupShown('created'),
};

export const groupSetCommand: AdminCommand<{ before: GroupRecord; after: GroupRecord }> = {
  id: 'group-set', title: 'Change a Group',
  instructions: "Changes the description or the members (+a,-b adds and removes); takes effect at once in every room.",
  fields: [GROUP, DESCRIPTION, MEMBERS],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => {
    const description = textInput(input, 'description');
    const members = listInput(input, 'members');
    return updateGroup(chatContext(ctx), chatActor(ctx.actor), one(input, 'group'), {
      ...(description !== undefined ? { description } : {}), ...(members ? { members } : {}),
    });
  }),
  render: (r) => groupShown('changed')(r.after),
};

export const groupShowCommand: AdminCommand<GroupRecord> = {
  id: 'group-show', title: 'Show a Group',
  instructions: "A group's description and direct members.",
  fields: [GROUP],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => showGroup(chatContext(ctx), chatActor(ctx.actor), one(input, 'group'))),
  render: groupShown(''),
};

export const groupListCommand: AdminCommand<GroupSummary[]> = {
  id: 'group-list', title: 'List Groups',
  instructions: 'Every group with its number of direct members.',
  fields: [],
  allowed: isAdminActor,
  run: (ctx) => op(() => listGroups(chatContext(ctx), chatActor(ctx.actor))),
  render(groups) {
    const lines = table(['GROUP', 'MEMBERS', 'DESCRIPTION'], groups.map((g) => [g.name, String(g.members), g.description]));
    return { notes: [], fields: [{ var: 'groups', type: 'text-multi', label: 'Groups', values: lines }], lines };
  },
};

export const groupDeleteCommand: AdminCommand<string> = {
  id: 'group-delete', title: 'Delete a Group',
  instructions: 'Its members lose what the group carried, at once. Lists naming it keep the entry, which covers nobody.',
  fields: [GROUP],
  allowed: isAdminActor,
  run: (ctx, input) => op(async () => {
    await deleteGroup(chatContext(ctx), chatActor(ctx.actor), one(input, 'group'));
    return one(input, 'group');
  }),
  render: (g) => ({ notes: [{ type: 'info', text: `group ${g} deleted` }] }),
};

export const ouAddCommand: AdminCommand<{ path: string; created: boolean }> = {
  id: 'ou-add', title: 'Create an Org Unit',
  instructions: 'An org unit (a path such as /corp/emea/sales); ou:/corp covers every unit below it. An existing unit gets the new description.',
  fields: [PATH, DESCRIPTION],
  allowed: isAdminActor,
  run: (ctx, input) => op(async () => ({
    path: one(input, 'path'),
    created: await addOrgUnit(chatContext(ctx), chatActor(ctx.actor), one(input, 'path'), textInput(input, 'description') ?? ''),
  })),
  render: (r) => ({ notes: [{ type: 'info', text: `org unit ${r.path} ${r.created ? 'created' : 'changed'}` }] }),
};

export const ouListCommand: AdminCommand<OrgUnitRecord[]> = {
  id: 'ou-list', title: 'List Org Units',
  instructions: 'Every org unit with the number of users placed directly in it.',
  fields: [],
  allowed: isAdminActor,
  run: (ctx) => op(() => listOrgUnits(chatContext(ctx), chatActor(ctx.actor))),
  render(units) {
    const lines = table(['PATH', 'USERS', 'DESCRIPTION'], units.map((u) => [u.path, String(u.users), u.description]));
    return { notes: [], fields: [{ var: 'units', type: 'text-multi', label: 'Org units', values: lines }], lines };
  },
};

export const ouDeleteCommand: AdminCommand<string> = {
  id: 'ou-delete', title: 'Delete an Org Unit',
  instructions: 'Only a unit with no users in it or below it can be deleted.',
  fields: [PATH],
  allowed: isAdminActor,
  run: (ctx, input) => op(async () => {
    await deleteOrgUnit(chatContext(ctx), chatActor(ctx.actor), one(input, 'path'));
    return one(input, 'path');
  }),
  render: (p) => ({ notes: [{ type: 'info', text: `org unit ${p} deleted` }] }),
};

export const userSetCommand: AdminCommand<{ user: string; ou: string | null }> = {
  id: 'user-set', title: "Set a User's Org Unit",
  instructions: "Puts the user into an org unit ('' for none); a user sits in at most one.",
  fields: [
    { name: 'user', type: 'jid-single', label: 'User (bare JID, or a username of this server)', required: true, positional: 0 },
    { name: 'ou', type: 'text-multi', label: "Org unit path ('' for none), required" },
  ],
  allowed: isAdminActor,
  run: (ctx, input) => op(async () => {
    const raw = one(input, 'user').trim();
    const user = raw.includes('@') ? raw : `${raw}@${ctx.domain}`;
    if (!input.ou || input.ou.length === 0) throw new AdminError("missing required field ou ('' for none)");
    const path = input.ou.join('').trim();
    await setUserOrgUnit(chatContext(ctx), chatActor(ctx.actor), user, path === '' ? null : path);
    return { user, ou: path === '' ? null : path };
  }),
  render: (r) => ({ notes: [{ type: 'info', text: r.ou ? `${r.user} is in ${r.ou}` : `${r.user} is in no org unit` }] }),
};

export const directoryCommands: AnyAdminCommand[] = [
  groupAddCommand, groupSetCommand, groupShowCommand, groupListCommand, groupDeleteCommand,
  ouAddCommand, ouListCommand, ouDeleteCommand, userSetCommand,
];
