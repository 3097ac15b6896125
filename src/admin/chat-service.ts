// Add-ins, service settings and policies on the admin layer. Admins only.
import type { AddinRecord, ChatPolicyRecord, ChatServiceSettings } from '../../storage/types.js';
import {
  createAddin, deleteAddin, getPolicies, getServiceSettings, listAddins, setPolicy, setServiceSettings, updateAddin, type PolicyScope,
} from '../pchat/settings-ops.js';
import { AdminError, isAdminActor, one, type AdminCommand, type AnyAdminCommand, type FieldSpec, type Rendered } from './command.js';
import {
  SERVICE_FIELD, boolField, boolInput, chatActor, chatContext, intInput, onOff, op, optionalInput, serviceInput, table,
} from './chat-context.js';

const ADDIN: FieldSpec = { name: 'name', type: 'text-single', label: 'Add-in name', required: true, positional: 0 };

export const addinAddCommand: AdminCommand<AddinRecord> = {
  id: 'addin-add', title: 'Register an Add-in',
  instructions: 'A name and an http(s) URL; a room may show one add-in.',
  fields: [ADDIN, { name: 'url', type: 'text-single', label: 'URL (http or https)', required: true }, SERVICE_FIELD],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => createAddin(chatContext(ctx), chatActor(ctx.actor), serviceInput(ctx, input), one(input, 'name'), one(input, 'url'))),
  render: (a) => ({ notes: [{ type: 'info', text: `add-in ${a.name} registered: ${a.url}` }] }),
};

export const addinSetCommand: AdminCommand<AddinRecord> = {
  id: 'addin-set', title: 'Change an Add-in',
  instructions: 'A new name (rooms showing it follow) or URL.',
  fields: [ADDIN, { name: 'rename', type: 'text-single', label: 'New name' }, { name: 'url', type: 'text-single', label: 'URL (http or https)' }, SERVICE_FIELD],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => {
    const rename = optionalInput(input, 'rename');
    const url = optionalInput(input, 'url');
    return updateAddin(chatContext(ctx), chatActor(ctx.actor), serviceInput(ctx, input), one(input, 'name'), {
      ...(rename !== undefined ? { name: rename } : {}), ...(url !== undefined ? { url } : {}),
    });
  }),
  render: (a) => ({ notes: [{ type: 'info', text: `add-in ${a.name}: ${a.url}` }] }),
};

export const addinListCommand: AdminCommand<(AddinRecord & { rooms: number })[]> = {
  id: 'addin-list', title: 'List Add-ins',
  instructions: 'Every add-in of the service and how many rooms show it.',
  fields: [SERVICE_FIELD],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => listAddins(chatContext(ctx), chatActor(ctx.actor), serviceInput(ctx, input))),
  render(addins) {
    const lines = table(['NAME', 'ROOMS', 'URL'], addins.map((a) => [a.name, String(a.rooms), a.url]));
    return { notes: [], fields: [{ var: 'addins', type: 'text-multi', label: 'Add-ins', values: lines }], lines };
  },
};

export const addinDeleteCommand: AdminCommand<{ name: string; rooms: string[] }> = {
  id: 'addin-delete', title: 'Delete an Add-in',
  instructions: 'An add-in rooms still show is kept unless force is on (then those rooms show none).',
  fields: [ADDIN, boolField('force', 'Delete even when rooms show it'), SERVICE_FIELD],
  allowed: isAdminActor,
  run: (ctx, input) => op(async () => ({
    name: one(input, 'name'),
    ...(await deleteAddin(chatContext(ctx), chatActor(ctx.actor), serviceInput(ctx, input), one(input, 'name'), boolInput(input, 'force') ?? false)),
  })),
  render: (r) => ({ notes: [{ type: 'info', text: `add-in ${r.name} deleted${r.rooms.length ? `; removed from ${r.rooms.join(', ')}` : ''}` }] }),
};

type Settings = ChatServiceSettings & { service: string };

function settingsShown(s: Settings): Rendered {
  const lines = [
    `service:                  ${s.service}`,
    `default-history:          ${s.defaultHistory}`,
    `max-file-size-kb:         ${s.maxFileSizeKb}`,
    `participant-update-limit: ${s.participantUpdateLimit}`,
    `room-management-url:      ${s.roomManagementUrl}`,
  ];
  return {
    notes: [],
    fields: [
      { var: 'default-history', type: 'text-single', label: 'Messages a joining user gets', values: [String(s.defaultHistory)] },
      { var: 'max-file-size-kb', type: 'text-single', label: 'Largest file (KB)', values: [String(s.maxFileSizeKb)] },
      { var: 'participant-update-limit', type: 'text-single', label: 'Occupants above which joins and leaves are not broadcast', values: [String(s.participantUpdateLimit)] },
      { var: 'room-management-url', type: 'text-single', label: 'Room management URL', values: [s.roomManagementUrl] },
    ],
    lines,
  };
}

export const serviceGetCommand: AdminCommand<Settings> = {
  id: 'service-get', title: 'Show the Chat Service Settings',
  instructions: "The service's settings (also in its disco#info).",
  fields: [SERVICE_FIELD],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => getServiceSettings(chatContext(ctx), chatActor(ctx.actor), serviceInput(ctx, input))),
  render: settingsShown,
};

export const serviceSetCommand: AdminCommand<Settings> = {
  id: 'service-set', title: 'Change the Chat Service Settings',
  instructions: 'Changes only the settings given.',
  fields: [
    { name: 'default-history', type: 'text-single', label: 'Messages a joining user gets (1-500, default 30)' },
    { name: 'max-file-size-kb', type: 'text-single', label: 'Largest file in KB (at least 1, default 20000)' },
    { name: 'participant-update-limit', type: 'text-single', label: 'Occupants above which joins and leaves are not broadcast (at least 1, default 75)' },
    { name: 'room-management-url', type: 'text-multi', label: "Room management URL (http or https; '' for none)" },
    SERVICE_FIELD,
  ],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => {
    const changes: Partial<ChatServiceSettings> = {};
    const dh = intInput(input, 'default-history');
    if (dh !== undefined) changes.defaultHistory = dh;
    const mf = intInput(input, 'max-file-size-kb');
    if (mf !== undefined) changes.maxFileSizeKb = mf;
    const pl = intInput(input, 'participant-update-limit');
    if (pl !== undefined) changes.participantUpdateLimit = pl;
    const url = input['room-management-url'];
    if (url && url.length > 0) changes.roomManagementUrl = url.join('').trim();
    return setServiceSettings(chatContext(ctx), chatActor(ctx.actor), serviceInput(ctx, input), changes);
  }),
  render: settingsShown,
};

function policiesShown(list: ChatPolicyRecord[]): Rendered {
  const hasGlobal = list.some((p) => p.scope === 'global');
  const rows = [...(hasGlobal ? [] : [['global', '', 'on (default)']]), ...list.map((p) => [p.scope, p.subject, onOff(p.enabled)])];
  const lines = table(['SCOPE', 'SUBJECT', 'PERSISTENT CHAT'], rows);
  return { notes: [], fields: [{ var: 'policies', type: 'text-multi', label: 'Policies', values: lines }], lines };
}

export const policyGetCommand: AdminCommand<ChatPolicyRecord[]> = {
  id: 'policy-get', title: 'Show the Persistent-Chat Policies',
  instructions: 'Persistent chat on or off: a user entry wins over groups, groups over global (default on).',
  fields: [],
  allowed: isAdminActor,
  run: (ctx) => op(() => getPolicies(chatContext(ctx), chatActor(ctx.actor))),
  render: policiesShown,
};

export const policySetCommand: AdminCommand<ChatPolicyRecord[]> = {
  id: 'policy-set', title: 'Set a Persistent-Chat Policy',
  instructions: 'Turns persistent chat on or off, or unsets the entry, globally, for a group (group:NAME) or for a user (bare JID).',
  fields: [
    { name: 'target', type: 'text-single', label: 'global, group:NAME or a user (bare JID)', required: true, positional: 0 },
    { name: 'value', type: 'list-single', label: 'on, off or unset', required: true, positional: 1, options: [{ value: 'on' }, { value: 'off' }, { value: 'unset' }] },
  ],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => {
    const target = one(input, 'target').trim();
    const value = one(input, 'value').trim().toLowerCase();
    if (!['on', 'off', 'unset'].includes(value)) throw new AdminError(`the value is on, off or unset, not ${value}`);
    const enabled = value === 'unset' ? null : value === 'on';
    let scope: PolicyScope = 'user';
    let subject = target;
    if (target.toLowerCase() === 'global') { scope = 'global'; subject = ''; } else if (/^group:/i.test(target)) { scope = 'group'; subject = target.slice(6); }
    return setPolicy(chatContext(ctx), chatActor(ctx.actor), scope, subject, enabled);
  }),
  render: policiesShown,
};

export const chatServiceCommands: AnyAdminCommand[] = [
  addinAddCommand, addinSetCommand, addinListCommand, addinDeleteCommand, serviceGetCommand, serviceSetCommand, policyGetCommand, policySetCommand,
];
