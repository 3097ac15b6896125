// Account administration: the XEP-0133 user commands, each defined once for every face.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { parseJid, tryParseJid, type Jid } from '../../protocol/jid.js';
import type { FormField } from '../../protocol/forms.js';
import { addUser, deleteAccount, endSessions, setPassword } from '../accounts.js';
import {
  AdminError, isAdminActor, one, outcome, type Outcome, type AdminCommand, type AnyAdminCommand, type AdminContext, type AdminInput, type FieldSpec, type Note, type Rendered,
} from './command.js';
import { onlineAccounts } from './live.js';

/** A local account's name from a submitted JID, or why it is not one. */
function localAccount(ctx: AdminContext, raw: string): { username: string; jid: Jid } | { error: string } {
  const jid = tryParseJid(raw.trim());
  if (!jid || !jid.local) return { error: `${raw}: not a valid account JID` };
  if (jid.domain !== ctx.domain) return { error: `${raw}: not an account of ${ctx.domain}` };
  return { username: jid.local, jid };
}

/** Outcome per account of a command over several accounts. */
export interface PerAccount { ok: string[]; failures: string[] }

/** Applies `op` to each account in the accountjids field; `op` returns why it failed, or null. */
async function forEachAccount(ctx: AdminContext, input: AdminInput, op: (a: { username: string; jid: Jid }) => Promise<string | null>): Promise<PerAccount> {
  const ok: string[] = [];
  const failures: string[] = [];
  for (const raw of input.accountjids ?? []) {
    if (raw.trim() === '') continue;
    const a = localAccount(ctx, raw);
    if ('error' in a) { failures.push(a.error); continue; }
    const err = await op(a);
    if (err) failures.push(`${raw.trim()}: ${err}`); else ok.push(raw.trim());
  }
  return { ok, failures };
}

/** One note per outcome: successes as info, failures as an error (XEP-0050 §3.4). */
function summary(okHeading: string, failHeading: string): (r: PerAccount) => Rendered {
  return (r) => {
    const notes: Note[] = [];
    if (r.ok.length) notes.push({ type: 'info', text: `${okHeading}:\n${r.ok.join('\n')}` });
    if (r.failures.length) notes.push({ type: 'error', text: `${failHeading}:\n${r.failures.join('\n')}` });
    return { notes };
  };
}


const accountjids = (label: string): FieldSpec => ({ name: 'accountjids', type: 'jid-multi', label, required: true });
const accountjid = (label: string): FieldSpec => ({ name: 'accountjid', type: 'jid-single', label, required: true });
const MAX_ITEMS: FieldSpec = {
  name: 'max_items', type: 'list-single', label: 'Maximum number of items to show', default: ['25'],
  options: ['25', '50', '75', '100', '150', '200', 'none'].map((v) => ({ value: v, label: v === 'none' ? 'None' : v })),
};

/** The max_items limit: a positive number, or none (also 'all' and an empty value). */
function maxItems(input: AdminInput): number {
  const raw = one(input, 'max_items').trim();
  if (!raw || raw === 'none' || raw === 'all') return Infinity;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new AdminError(`invalid max_items ${raw}`);
  return n;
}

function resultField(name: string, type: string, label: string, values: string[]): FormField {
  return { var: name, type, label, values };
}

const admins = isAdminActor;

/** How a count reads: one result field, one line. */
function countResult(name: string, label: string): (n: number) => Rendered {
  return (n) => ({ notes: [], fields: [resultField(name, 'text-single', label, [String(n)])], lines: [String(n)] });
}

/** How a list of JIDs reads: one jid-multi result field, a line each. */
function jidListResult(name: string, label: string): (jids: string[]) => Rendered {
  return (jids) => ({ notes: [], fields: [resultField(name, 'jid-multi', label, jids)], lines: jids });
}

export const addUserCommand: AdminCommand<Outcome> = {
  id: 'add-user', title: 'Add User', instructions: 'Fill out this form to add a user.',
  fields: [
    accountjid('The Jabber ID for the account to be added'),
    { name: 'password', type: 'text-private', label: 'The password for this account' },
    { name: 'password-verify', type: 'text-private', label: 'Retype password', confirms: 'password' },
    { name: 'email', type: 'text-single', label: 'Email address' },
  ],
  allowed: admins,
  async run(ctx, input) {
    const a = localAccount(ctx, one(input, 'accountjid'));
    if ('error' in a) return { ok: false, text: a.error };
    if (!a.jid.isBare()) return { ok: false, text: `${a.jid}: an account JID has no resource` };
    const password = one(input, 'password');
    if (password !== one(input, 'password-verify')) return { ok: false, text: 'The passwords do not match' };
    if (password === '') return { ok: false, text: 'The password must not be empty' };
    const r = await addUser(ctx.stores, ctx.domain, a.username, password, ctx.scramIterations);
    // XEP-0133 §5: an existing account is a conflict, answered as an error stanza.
    if (r === 'exists') throw new AdminError('Account already exists', 'conflict');
    if (r === 'invalid') return { ok: false, text: `${a.jid}: not a valid username` };
    ctx.server?.log.info('account created by admin', { user: a.username, actor: ctx.actor.kind });
    return { ok: true, text: 'Account successfully created' };
  },
  render: outcome,
};

export const deleteUserCommand: AdminCommand<PerAccount> = {
  id: 'delete-user', title: 'Delete User', instructions: 'Fill out this form to delete a user.',
  fields: [accountjids('The Jabber ID(s) to delete')],
  allowed: admins,
  async run(ctx, input) {
    return forEachAccount(ctx, input, async (a) => {
      if (!(await deleteAccount(ctx.stores, ctx.domain, a.username, ctx.server))) return 'no such account';
      ctx.server?.log.info('account deleted by admin', { user: a.username, actor: ctx.actor.kind });
      return null;
    });
  },
  render: summary('The following accounts were deleted', 'The following accounts could not be deleted'),
};

export const disableUserCommand: AdminCommand<PerAccount> = {
  id: 'disable-user', title: 'Disable User', instructions: 'Fill out this form to disable a user.',
  fields: [accountjids('The Jabber ID(s) to disable')],
  allowed: admins,
  async run(ctx, input) {
    return forEachAccount(ctx, input, async (a) => {
      if (!(await ctx.stores.users.setDisabled(a.username, true))) return 'no such account';
      if (ctx.server) endSessions(ctx.server, a.jid.bare(), 'not-authorized', 'Account disabled');
      return null;
    });
  },
  render: summary('The following accounts were disabled', 'The following accounts could not be disabled'),
};

export const reenableUserCommand: AdminCommand<PerAccount> = {
  id: 'reenable-user', title: 'Re-Enable User', instructions: 'Fill out this form to enable a user.',
  fields: [accountjids('The Jabber ID(s) to re-enable')],
  allowed: admins,
  async run(ctx, input) {
    return forEachAccount(ctx, input, async (a) =>
      (await ctx.stores.users.setDisabled(a.username, false)) ? null : 'no such account');
  },
  render: summary('The following accounts were re-enabled', 'The following accounts could not be re-enabled'),
};

export const endUserSessionCommand: AdminCommand<PerAccount> = {
  id: 'end-user-session', title: 'End User Session', instructions: "Fill out this form to end a user's session.",
  fields: [accountjids('The Jabber ID(s) for which to end sessions')],
  needsServer: true,
  allowed: admins,
  async run(ctx, input) {
    const server = ctx.server!;
    return forEachAccount(ctx, input, async (a) => {
      if (!(await server.userExists(a.username))) return 'no such account';
      endSessions(server, a.jid);
      return null;
    });
  },
  render: summary('The following sessions were ended', 'The following sessions could not be ended'),
};

export const changeUserPasswordCommand: AdminCommand<Outcome> = {
  id: 'change-user-password', title: 'Change User Password', instructions: "Fill out this form to change a user's password.",
  fields: [
    accountjid('The Jabber ID for this account'),
    { name: 'password', type: 'text-private', label: 'The password for this account', required: true },
  ],
  allowed: admins,
  async run(ctx, input) {
    const a = localAccount(ctx, one(input, 'accountjid'));
    if ('error' in a) return { ok: false, text: a.error };
    if (!(await setPassword(ctx.stores, ctx.domain, a.username, one(input, 'password'), ctx.scramIterations))) {
      return { ok: false, text: 'User does not exist' };
    }
    ctx.server?.log.info('password changed by admin', { user: a.username, actor: ctx.actor.kind });
    return { ok: true, text: 'Password successfully changed' };
  },
  render: outcome,
};

export interface UserStats { error?: string; jid?: string; rosterSize?: number; resources?: string[]; ips?: string[] }

export const userStatsCommand: AdminCommand<UserStats> = {
  id: 'user-stats', title: 'Get User Statistics', instructions: 'Fill out this form to gather user statistics.',
  fields: [accountjid('The Jabber ID for statistics')],
  needsServer: true,
  allowed: admins,
  async run(ctx, input) {
    const server = ctx.server!;
    const a = localAccount(ctx, one(input, 'accountjid'));
    if ('error' in a) return { error: a.error };
    if (!(await server.userExists(a.username))) return { error: 'User does not exist' };
    const bare = a.jid.bareString();
    const roster = await ctx.stores.roster.get(a.username);
    const resources = server.sessions.resources(bare).map((r) => tryParseJid(r.jid)?.resource ?? '').filter(Boolean).sort();
    // Addresses are known only for the sessions this node holds.
    const ips = [...new Set(server.localOf(bare).map((s) => s.ip))].sort();
    return { jid: bare, rosterSize: roster.items.length, resources, ips };
  },
  render(s) {
    if (s.error) return { notes: [{ type: 'error', text: s.error }] };
    return {
      notes: [],
      fields: [
        resultField('accountjid', 'jid-single', 'The Jabber ID', [s.jid!]),
        resultField('rostersize', 'text-single', 'Roster size', [String(s.rosterSize)]),
        resultField('onlineresources', 'text-multi', 'Online resources', s.resources!),
        resultField('ipaddresses', 'text-multi', 'IP addresses', s.ips!),
      ],
      lines: [`account: ${s.jid}`, `roster size: ${s.rosterSize}`, `online resources: ${s.resources!.join(', ')}`, `IP addresses: ${s.ips!.join(', ')}`],
    };
  },
};

export const registeredUsersNumCommand: AdminCommand<number> = {
  id: 'get-registered-users-num', title: 'Get Number of Registered Users', instructions: '',
  fields: [],
  allowed: admins,
  run: (ctx) => ctx.stores.users.count(),
  render: countResult('registeredusersnum', 'The number of registered users'),
};

export const registeredUsersListCommand: AdminCommand<string[]> = {
  id: 'get-registered-users-list', title: 'Get List of Registered Users',
  instructions: 'Fill out this form to request the registered users of this service.',
  fields: [MAX_ITEMS],
  allowed: admins,
  async run(ctx, input) {
    return (await ctx.stores.users.list()).sort().slice(0, maxItems(input)).map((u) => `${u}@${ctx.domain}`);
  },
  render: jidListResult('registereduserjids', 'The list of all users'),
};

export const onlineUsersNumCommand: AdminCommand<number> = {
  id: 'get-online-users-num', title: 'Get Number of Online Users', instructions: '',
  fields: [],
  needsServer: true,
  allowed: admins,
  run: async (ctx) => onlineAccounts(ctx.server!).length,
  render: countResult('onlineusersnum', 'The number of online users'),
};

export const onlineUsersListCommand: AdminCommand<string[]> = {
  id: 'get-online-users-list', title: 'Get List of Online Users',
  instructions: 'Fill out this form to request the online users of this service.',
  fields: [MAX_ITEMS],
  needsServer: true,
  allowed: admins,
  run: async (ctx, input) => onlineAccounts(ctx.server!).slice(0, maxItems(input)),
  render: jidListResult('onlineuserjids', 'The list of all online users'),
};

export const announceCommand: AdminCommand<number> = {
  id: 'announce', title: 'Send Announcement to Online Users',
  instructions: 'Fill out this form to make an announcement to all active users of this service.',
  fields: [
    { name: 'subject', type: 'text-single', label: 'Subject' },
    { name: 'announcement', type: 'text-multi', label: 'Announcement', required: true },
  ],
  needsServer: true,
  allowed: admins,
  async run(ctx, input) {
    const server = ctx.server!;
    const subject = one(input, 'subject').trim() || 'Announcement';
    const body = (input.announcement ?? []).join('\n');
    let sent = 0;
    for (const rec of server.sessions.list()) {
      const msg = new Element('message', { xmlns: NS.client, type: 'headline', from: server.domain, to: rec.jid });
      msg.c('subject').t(subject);
      msg.c('body').t(body);
      server.router.deliverTo(rec, msg, 'message');
      sent++;
    }
    server.log.info('announcement sent', { sessions: sent });
    return sent;
  },
  render: (sent) => ({ notes: [{ type: 'info', text: `Announcement sent to ${sent} session(s)` }] }),
};

/** Every account operation, in the order the faces list them. */
export const userCommands: AnyAdminCommand[] = [
  addUserCommand, deleteUserCommand, disableUserCommand, reenableUserCommand, endUserSessionCommand,
  changeUserPasswordCommand, userStatsCommand, registeredUsersNumCommand, registeredUsersListCommand,
  onlineUsersNumCommand, onlineUsersListCommand, announceCommand,
];
