// XEP-0133 Service Administration: user management commands on the server JID, for admins only.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { tryParseJid, type Jid } from '../../protocol/jid.js';
import { StanzaError } from '../../protocol/errors.js';
import { formType, formValue, formValues, type DataForm, type FormField } from '../../protocol/forms.js';
import type { Module, Server } from '../context.js';
import { addUser, setPassword } from '../accounts.js';
import { commandError, registerCommand, type CommandNote, type CommandStep } from '../commands/registry.js';

const ADMIN = NS.adminCommands;
const FORM_TYPE: FormField = { var: 'FORM_TYPE', type: 'hidden', values: [ADMIN] };
/** Cluster topic: end one session held by the receiving node. */
const END_SESSION_TOPIC = 'end-session';
const MAX_ITEMS_OPTIONS = ['25', '50', '75', '100', '150', '200', 'none'];

type Completed = Extract<CommandStep, { status: 'completed' }>;

interface AdminCommand {
  /** The part after '#' in the node. */
  name: string;
  label: string;
  /** The form to fill first; commands without one run at once. */
  form?: DataForm;
  run(submitted: DataForm | null, from: Jid): Promise<Completed>;
}

function inputForm(title: string, instructions: string, fields: FormField[]): DataForm {
  return { type: 'form', title, instructions: [instructions], fields: [FORM_TYPE, ...fields] };
}

function resultForm(fields: FormField[]): DataForm {
  return { type: 'result', fields: [FORM_TYPE, ...fields] };
}

function done(...notes: CommandNote[]): Completed {
  return { status: 'completed', notes };
}

function failed(text: string): Completed {
  return done({ type: 'error', text });
}

/** XEP-0050 bad-payload when the submission is not this form: wrong FORM_TYPE or a required field left empty. */
function checkSubmission(template: DataForm, submitted: DataForm): void {
  if (submitted.type !== 'submit') throw commandError('bad-payload', 'expected a submitted form');
  const declared = formType(submitted);
  if (declared !== undefined && declared !== ADMIN) throw commandError('bad-payload', `unexpected FORM_TYPE ${declared}`);
  for (const f of template.fields) {
    if (f.required && f.var && !formValues(submitted, f.var).some((v) => v.trim() !== '')) {
      throw commandError('bad-payload', `missing required field ${f.var}`);
    }
  }
}

/** A local account's name from a submitted JID, or why it is not one. */
function localAccount(server: Server, raw: string): { username: string; jid: Jid } | { error: string } {
  const jid = tryParseJid(raw.trim());
  if (!jid || !jid.local) return { error: `${raw}: not a valid account JID` };
  if (jid.domain !== server.domain) return { error: `${raw}: not an account of ${server.domain}` };
  return { username: jid.local, jid };
}

/**
 * Ends the sessions of an account (bare JID) or one session (full JID), wherever in the cluster
 * they are. Returns how many were asked to end.
 */
function endSessions(server: Server, jid: Jid, condition?: 'not-authorized', text?: string): number {
  const bare = jid.bareString();
  let n = 0;
  for (const s of server.localOf(bare)) {
    if (jid.isBare() || s.full === jid.toString()) { s.close(condition, text); n++; }
  }
  for (const rec of server.sessions.resources(bare)) {
    if (rec.node === server.sessions.nodeId || (!jid.isBare() && rec.jid !== jid.toString())) continue;
    server.cluster.send(rec.node, END_SESSION_TOPIC, { jid: rec.jid, condition, text });
    n++;
  }
  return n;
}

/** One result note per outcome: successes as info, failures as an error (XEP-0050 §3.4). */
function summary(okHeading: string, ok: string[], failHeading: string, failures: string[]): Completed {
  const notes: CommandNote[] = [];
  if (ok.length) notes.push({ type: 'info', text: `${okHeading}:\n${ok.join('\n')}` });
  if (failures.length) notes.push({ type: 'error', text: `${failHeading}:\n${failures.join('\n')}` });
  return { status: 'completed', notes };
}

/** Applies `op` to each account in the accountjids field. */
async function forEachAccount(
  server: Server, submitted: DataForm | null,
  op: (a: { username: string; jid: Jid; raw: string }) => Promise<string | null>,
): Promise<{ ok: string[]; failures: string[] }> {
  const ok: string[] = [];
  const failures: string[] = [];
  for (const raw of submitted ? formValues(submitted, 'accountjids') : []) {
    if (raw.trim() === '') continue;
    const a = localAccount(server, raw);
    if ('error' in a) { failures.push(a.error); continue; }
    const err = await op({ ...a, raw: raw.trim() });
    if (err) failures.push(`${raw.trim()}: ${err}`); else ok.push(raw.trim());
  }
  return { ok, failures };
}

function maxItemsField(): FormField {
  return {
    var: 'max_items', type: 'list-single', label: 'Maximum number of items to show', values: ['25'],
    options: MAX_ITEMS_OPTIONS.map((v) => ({ label: v === 'none' ? 'None' : v, value: v })),
  };
}

/** The max_items limit: a positive number, or none (also 'all' and an empty value). */
function maxItems(submitted: DataForm | null): number {
  const raw = submitted ? formValue(submitted, 'max_items')?.trim() : undefined;
  if (!raw || raw === 'none' || raw === 'all') return Infinity;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw commandError('bad-payload', `invalid max_items ${raw}`);
  return n;
}

function onlineAccounts(server: Server): string[] {
  const bare = new Set<string>();
  for (const rec of server.sessions.list()) {
    const j = tryParseJid(rec.jid);
    if (j && j.domain === server.domain) bare.add(j.bareString());
  }
  return [...bare].sort();
}

function accountjidsField(label: string): FormField {
  return { var: 'accountjids', type: 'jid-multi', label, required: true, values: [] };
}

function accountjidField(label: string): FormField {
  return { var: 'accountjid', type: 'jid-single', label, required: true, values: [] };
}

function commands(server: Server): AdminCommand[] {
  const iterations = server.config.scramIterations;
  return [
    {
      name: 'add-user', label: 'Add User',
      form: inputForm('Adding a User', 'Fill out this form to add a user.', [
        accountjidField('The Jabber ID for the account to be added'),
        { var: 'password', type: 'text-private', label: 'The password for this account', values: [] },
        { var: 'password-verify', type: 'text-private', label: 'Retype password', values: [] },
        { var: 'email', type: 'text-single', label: 'Email address', values: [] },
      ]),
      async run(f) {
        const a = localAccount(server, formValue(f!, 'accountjid') ?? '');
        if ('error' in a) return failed(a.error);
        if (!a.jid.isBare()) return failed(`${a.jid}: an account JID has no resource`);
        const password = formValue(f!, 'password') ?? '';
        if (password !== (formValue(f!, 'password-verify') ?? '')) return failed('The passwords do not match');
        if (password === '') return failed('The password must not be empty');
        const r = await addUser(server.stores, server.domain, a.username, password, iterations);
        // XEP-0133 §5: an existing account is a conflict, answered as an error stanza.
        if (r === 'exists') throw new StanzaError('conflict', 'Account already exists');
        if (r === 'invalid') return failed(`${a.jid}: not a valid username`);
        server.log.info('account created by admin command', { user: a.username });
        return done({ type: 'info', text: 'Account successfully created' });
      },
    },
    {
      name: 'delete-user', label: 'Delete User',
      form: inputForm('Deleting a User', 'Fill out this form to delete a user.', [accountjidsField('The Jabber ID(s) to delete')]),
      async run(f) {
        const r = await forEachAccount(server, f, async (a) => {
          endSessions(server, a.jid.bare(), 'not-authorized', 'Account deleted');
          if (!(await server.stores.users.delete(a.username))) return 'no such account';
          await server.hooks.fire('user/deleted', { username: a.username });
          server.log.info('account deleted by admin command', { user: a.username });
          return null;
        });
        return summary('The following accounts were deleted', r.ok, 'The following accounts could not be deleted', r.failures);
      },
    },
    {
      name: 'disable-user', label: 'Disable User',
      form: inputForm('Disabling a User', 'Fill out this form to disable a user.', [accountjidsField('The Jabber ID(s) to disable')]),
      async run(f) {
        const r = await forEachAccount(server, f, async (a) => {
          if (!(await server.stores.users.setDisabled(a.username, true))) return 'no such account';
          endSessions(server, a.jid.bare(), 'not-authorized', 'Account disabled');
          return null;
        });
        return summary('The following accounts were disabled', r.ok, 'The following accounts could not be disabled', r.failures);
      },
    },
    {
      name: 'reenable-user', label: 'Re-Enable User',
      form: inputForm('Re-Enabling a User', 'Fill out this form to enable a user.', [accountjidsField('The Jabber ID(s) to re-enable')]),
      async run(f) {
        const r = await forEachAccount(server, f, async (a) =>
          (await server.stores.users.setDisabled(a.username, false)) ? null : 'no such account');
        return summary('The following accounts were re-enabled', r.ok, 'The following accounts could not be re-enabled', r.failures);
      },
    },
    {
      name: 'end-user-session', label: 'End User Session',
      form: inputForm('Ending a User Session', "Fill out this form to end a user's session.", [
        accountjidsField('The Jabber ID(s) for which to end sessions'),
      ]),
      async run(f) {
        const r = await forEachAccount(server, f, async (a) => {
          if (!(await server.userExists(a.username))) return 'no such account';
          endSessions(server, a.jid);
          return null;
        });
        return summary('The following sessions were ended', r.ok, 'The following sessions could not be ended', r.failures);
      },
    },
    {
      name: 'change-user-password', label: 'Change User Password',
      form: inputForm('Changing a User Password', "Fill out this form to change a user's password.", [
        accountjidField('The Jabber ID for this account'),
        { var: 'password', type: 'text-private', label: 'The password for this account', required: true, values: [] },
      ]),
      async run(f) {
        const a = localAccount(server, formValue(f!, 'accountjid') ?? '');
        if ('error' in a) return failed(a.error);
        const ok = await setPassword(server.stores, server.domain, a.username, formValue(f!, 'password') ?? '', iterations);
        if (!ok) return failed('User does not exist');
        server.log.info('password changed by admin command', { user: a.username });
        return done({ type: 'info', text: 'Password successfully changed' });
      },
    },
    {
      name: 'user-stats', label: 'Get User Statistics',
      form: inputForm('Get User Statistics', 'Fill out this form to gather user statistics.', [
        accountjidField('The Jabber ID for statistics'),
      ]),
      async run(f) {
        const a = localAccount(server, formValue(f!, 'accountjid') ?? '');
        if ('error' in a) return failed(a.error);
        if (!(await server.userExists(a.username))) return failed('User does not exist');
        const bare = a.jid.bareString();
        const roster = await server.stores.roster.get(a.username);
        const resources = server.sessions.resources(bare).map((r) => tryParseJid(r.jid)?.resource ?? '').filter(Boolean).sort();
        // Addresses are known only for the sessions this node holds.
        const ips = [...new Set(server.localOf(bare).map((s) => s.ip))].sort();
        return {
          status: 'completed',
          form: resultForm([
            { var: 'accountjid', type: 'jid-single', label: 'The Jabber ID', values: [bare] },
            { var: 'rostersize', type: 'text-single', label: 'Roster size', values: [String(roster.items.length)] },
            { var: 'onlineresources', type: 'text-multi', label: 'Online resources', values: resources },
            { var: 'ipaddresses', type: 'text-multi', label: 'IP addresses', values: ips },
          ]),
        };
      },
    },
    {
      name: 'get-registered-users-num', label: 'Get Number of Registered Users',
      async run() {
        const n = await server.stores.users.count();
        return { status: 'completed', form: resultForm([
          { var: 'registeredusersnum', type: 'text-single', label: 'The number of registered users', values: [String(n)] },
        ]) };
      },
    },
    {
      name: 'get-registered-users-list', label: 'Get List of Registered Users',
      form: inputForm('Requesting List of Registered Users', 'Fill out this form to request the registered users of this service.', [maxItemsField()]),
      async run(f) {
        const limit = maxItems(f);
        const users = (await server.stores.users.list()).sort().slice(0, limit).map((u) => `${u}@${server.domain}`);
        return { status: 'completed', form: resultForm([
          { var: 'registereduserjids', type: 'jid-multi', label: 'The list of all users', values: users },
        ]) };
      },
    },
    {
      name: 'get-online-users-num', label: 'Get Number of Online Users',
      async run() {
        return { status: 'completed', form: resultForm([
          { var: 'onlineusersnum', type: 'text-single', label: 'The number of online users', values: [String(onlineAccounts(server).length)] },
        ]) };
      },
    },
    {
      name: 'get-online-users-list', label: 'Get List of Online Users',
      form: inputForm('Requesting List of Online Users', 'Fill out this form to request the online users of this service.', [maxItemsField()]),
      async run(f) {
        const users = onlineAccounts(server).slice(0, maxItems(f));
        return { status: 'completed', form: resultForm([
          { var: 'onlineuserjids', type: 'jid-multi', label: 'The list of all online users', values: users },
        ]) };
      },
    },
    {
      name: 'announce', label: 'Send Announcement to Online Users',
      form: inputForm('Making an Announcement', 'Fill out this form to make an announcement to all active users of this service.', [
        { var: 'subject', type: 'text-single', label: 'Subject', values: [] },
        { var: 'announcement', type: 'text-multi', label: 'Announcement', required: true, values: [] },
      ]),
      async run(f) {
        const subject = formValue(f!, 'subject')?.trim() || 'Announcement';
        const body = formValues(f!, 'announcement').join('\n');
        let sent = 0;
        for (const rec of server.sessions.list()) {
          const msg = new Element('message', { xmlns: NS.client, type: 'headline', from: server.domain, to: rec.jid });
          msg.c('subject').t(subject);
          msg.c('body').t(body);
          server.router.deliverTo(rec, msg, 'message');
          sent++;
        }
        server.log.info('announcement sent', { sessions: sent });
        return done({ type: 'info', text: `Announcement sent to ${sent} session(s)` });
      },
    },
  ];
}

export const adminCommandsModule: Module = {
  name: 'admin-commands',
  init(server) {
    const allowed = (from: Jid) => server.isAdmin(from);
    for (const c of commands(server)) {
      registerCommand(server, {
        node: `${ADMIN}#${c.name}`, name: c.label, jid: 'host', allowed,
        async execute(ctx) {
          if (!c.form) return c.run(null, ctx.from);
          if (!ctx.form) return { status: 'executing', form: c.form, actions: { allowed: ['complete'], default: 'complete' } };
          checkSubmission(c.form, ctx.form);
          return c.run(ctx.form, ctx.from);
        },
      });
    }
    server.cluster.on(END_SESSION_TOPIC, (data) => {
      const d = data as { jid?: unknown; condition?: unknown; text?: unknown } | null;
      if (!d || typeof d.jid !== 'string') return;
      const condition = d.condition === 'not-authorized' ? 'not-authorized' : undefined;
      server.local.get(d.jid)?.close(condition, typeof d.text === 'string' ? d.text : undefined);
    });
  },
};
