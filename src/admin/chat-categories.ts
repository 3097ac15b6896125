// Persistent-chat categories on the admin layer: add, set, list, delete (when empty). Admins only;
// anyone else on a MUC service's JID lists the categories where they may create rooms.
import type { CategoryRecord } from '../../storage/types.js';
import { createCategory, deleteCategory, listCategories, updateCategory, type CategoryChanges } from '../pchat/operations.js';
import { isAdminActor, one, type AdminCommand, type AdminInput, type AnyAdminCommand, type FieldSpec, type Rendered } from './command.js';
import {
  SERVICE_FIELD, adminsOrServiceAccounts, boolField, boolInput, chatActor, chatContext, listCell, listField, listInput, onOff, op,
  optionalInput, serviceInput, table, textInput,
} from './chat-context.js';

const NAME: FieldSpec = { name: 'name', type: 'text-single', label: 'Category name', required: true, positional: 0 };

const SETTINGS: FieldSpec[] = [
  { name: 'description', type: 'text-multi', label: 'Description (at most 256 characters)' },
  listField('allowed', 'Allowed: who may use its rooms'),
  listField('denied', 'Denied: excluded even when allowed (deny wins)'),
  listField('creators', 'Creators: who may create rooms in it (inside the scope)'),
  boolField('invitations', 'Invitations to new members of its rooms'),
  boolField('file-upload', 'File upload in its rooms'),
  boolField('chat-history', 'Chat history kept and served'),
  boolField('editing', 'Authors may correct and retract their posted messages'),
  SERVICE_FIELD,
];

function changesOf(input: AdminInput): CategoryChanges {
  const c: CategoryChanges = {};
  const description = textInput(input, 'description');
  if (description !== undefined) c.description = description;
  for (const [field, key] of [['allowed', 'allowed'], ['denied', 'denied'], ['creators', 'creators']] as const) {
    const change = listInput(input, field);
    if (change) c[key] = change;
  }
  const inv = boolInput(input, 'invitations');
  if (inv !== undefined) c.invitations = inv;
  const fu = boolInput(input, 'file-upload');
  if (fu !== undefined) c.fileUpload = fu;
  const ch = boolInput(input, 'chat-history');
  if (ch !== undefined) c.chatHistory = ch;
  const ed = boolInput(input, 'editing');
  if (ed !== undefined) c.editing = ed;
  return c;
}

export function categoryLines(c: CategoryRecord): string[] {
  return [
    `category:     ${c.name}`,
    `service:      ${c.service}`,
    `description:  ${c.description}`,
    `allowed:      ${listCell(c.allowed)}`,
    `denied:       ${listCell(c.denied)}`,
    `creators:     ${listCell(c.creators)}`,
    `invitations:  ${onOff(c.invitations)}`,
    `file upload:  ${onOff(c.fileUpload)}`,
    `chat history: ${onOff(c.chatHistory)}`,
    `editing:      ${onOff(c.editing)}`,
  ];
}

function shown(verb: string): (c: CategoryRecord) => Rendered {
  return (c) => ({
    notes: [{ type: 'info', text: `category ${c.name} ${verb}` }],
    fields: [{ var: 'category', type: 'text-multi', label: 'Category', values: categoryLines(c) }],
    lines: categoryLines(c),
  });
}

export const categoryAddCommand: AdminCommand<CategoryRecord> = {
  id: 'category-add', title: 'Create a Chat Category',
  instructions: 'A category holds rooms and sets who may use them (allowed minus denied) and who may create them.',
  fields: [NAME, ...SETTINGS],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => createCategory(chatContext(ctx), chatActor(ctx.actor), serviceInput(ctx, input), { name: one(input, 'name'), ...changesOf(input) })),
  render: shown('created'),
};

export const categorySetCommand: AdminCommand<{ before: CategoryRecord; after: CategoryRecord }> = {
  id: 'category-set', title: 'Change a Chat Category',
  instructions: 'Changes only the fields given. Its rooms keep their lists; access is computed, so whom a narrower scope excludes loses access at once.',
  fields: [NAME, { name: 'rename', type: 'text-single', label: 'New name' }, ...SETTINGS],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => {
    const changes = changesOf(input);
    const rename = optionalInput(input, 'rename');
    if (rename !== undefined) changes.name = rename;
    return updateCategory(chatContext(ctx), chatActor(ctx.actor), serviceInput(ctx, input), one(input, 'name'), changes);
  }),
  render: (r) => shown('changed')(r.after),
};

export const categoryListCommand: AdminCommand<CategoryRecord[]> = {
  id: 'category-list', title: 'List Chat Categories',
  instructions: 'Admins see every category; others the categories where they may create rooms.',
  fields: [SERVICE_FIELD],
  allowed: adminsOrServiceAccounts,
  run: (ctx, input) => op(() => listCategories(chatContext(ctx), chatActor(ctx.actor), serviceInput(ctx, input))),
  render(cats) {
    const lines = table(
      ['NAME', 'ALLOWED', 'DENIED', 'CREATORS', 'INVITATIONS', 'FILES', 'HISTORY', 'DESCRIPTION'],
      cats.map((c) => [c.name, listCell(c.allowed), listCell(c.denied), listCell(c.creators), onOff(c.invitations), onOff(c.fileUpload), onOff(c.chatHistory), c.description]),
    );
    return { notes: [], fields: [{ var: 'categories', type: 'text-multi', label: 'Categories', values: lines }], lines };
  },
};

export const categoryDeleteCommand: AdminCommand<string> = {
  id: 'category-delete', title: 'Delete a Chat Category',
  instructions: 'Only an empty category can be deleted: move or delete its rooms first.',
  fields: [NAME, SERVICE_FIELD],
  allowed: isAdminActor,
  run: (ctx, input) => op(async () => {
    await deleteCategory(chatContext(ctx), chatActor(ctx.actor), serviceInput(ctx, input), one(input, 'name'));
    return one(input, 'name');
  }),
  render: (name) => ({ notes: [{ type: 'info', text: `category ${name} deleted` }] }),
};

export const categoryCommands: AnyAdminCommand[] = [categoryAddCommand, categorySetCommand, categoryListCommand, categoryDeleteCommand];
