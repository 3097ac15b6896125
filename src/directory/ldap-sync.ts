// The company directory from LDAP: users (their org unit from their DN), groups and their members
// (a member that is a group becomes a nested group: Perch expands nesting itself), read with paged
// searches, compared with what Perch holds, and applied through the directory operations — the same
// ones an administrator runs — so each change reaches every node and every room at once.
//
// What the sync owns is marked in the description ("LDAP: <dn>"): it creates, changes and deletes
// only groups and org units so marked, and leaves an administrator's own groups alone. It places
// users (bare JIDs) into groups and units; it creates accounts only when LDAP checks their passwords
// (auth: ldap), and then with a random local password (docs/directory.md).
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Client, InvalidCredentialsError, type Entry } from 'ldapts';
import { addUser } from '../accounts.js';
import { ouLineage } from '../../protocol/principal.js';
import type { LdapConfig } from '../config.js';
import type { Progress } from '../admin/command.js';
import {
  addOrgUnit, createGroup, deleteGroup, deleteOrgUnit, groupName, setUserOrgUnit, updateGroup,
} from '../pchat/directory-ops.js';
import { canonical, type ChatActor, type ChatOpContext } from '../pchat/operations.js';

/** Descriptions of what the sync made start so; the rest of the text is the entry's DN. */
export const LDAP_MARK = 'LDAP: ';
const MAX_DESCRIPTION = 256;
const PAGE_SIZE = 500;
/** Users an org unit's subtree may hold when the sync looks for those who left the directory. */
const EXPAND_LIMIT = 1_000_000;

export interface LdapUser { dn: string; jid: string; ou: string | null }
export interface LdapGroup { dn: string; name: string; members: string[] }
export interface LdapSnapshot { users: LdapUser[]; groups: LdapGroup[]; warnings: string[] }

/** What a sync changed (or, dry, would change). */
export interface SyncReport {
  dryRun: boolean;
  /** Entries read from LDAP. */
  users: number;
  groups: number;
  groupsAdded: string[];
  groupsRemoved: string[];
  membersAdded: { group: string; member: string }[];
  membersRemoved: { group: string; member: string }[];
  unitsAdded: string[];
  unitsRemoved: string[];
  moves: { user: string; from: string | null; to: string | null }[];
  /** Accounts created for directory users (auth: ldap only). */
  accountsAdded: string[];
  /** Entries skipped and operations refused (a cycle, a name taken by an administrator's group). */
  warnings: string[];
  ms: number;
}

/** Changes in no particular order; applied in the order that keeps every step valid (see applyPlan). */
export interface SyncPlan {
  unitsAdded: { path: string; dn: string }[];
  groupsAdded: { name: string; dn: string }[];
  membersAdded: { group: string; member: string }[];
  membersRemoved: { group: string; member: string }[];
  moves: { user: string; from: string | null; to: string | null }[];
  groupsRemoved: string[];
  unitsRemoved: string[];
  warnings: string[];
}

type ProgressFn = (p: Progress) => void;

// --- DNs ------------------------------------------------------------------------------------------

/** A DN's RDNs as [type, value], innermost first (escaped commas kept inside values). */
export function rdns(dn: string): [string, string][] {
  return dn.split(/(?<!\\),/).map((r) => r.trim()).filter((r) => r !== '').map((r) => {
    const eq = r.indexOf('=');
    return [r.slice(0, eq).trim().toLowerCase(), r.slice(eq + 1).trim().replace(/\\(.)/g, '$1')];
  });
}

/** The form DNs are compared in: types and values lower-cased, no spaces around separators. */
export function normaliseDn(dn: string): string {
  return dn.split(/(?<!\\),/).map((r) => r.trim()).filter((r) => r !== '').map((r) => {
    const eq = r.indexOf('=');
    return `${r.slice(0, eq).trim()}=${r.slice(eq + 1).trim()}`.toLowerCase();
  }).join(',');
}

/** The org unit a DN's ou= components name, outermost first: ou=sales,ou=people,dc=x → /people/sales. */
export function ouOfDn(dn: string): string | null {
  const units = rdns(dn).filter(([t]) => t === 'ou').map(([, v]) => v.trim().toLowerCase()).reverse();
  if (units.length === 0 || units.some((u) => u === '' || u.includes('/'))) return null;
  return '/' + units.join('/');
}

/** The DN of the entry an org unit path came from (the user's DN from its outermost ou= on). */
function unitDn(userDn: string, path: string): string {
  const parts = userDn.split(/(?<!\\),/).map((r) => r.trim());
  const depth = path.split('/').length - 1;
  let seen = 0;
  for (let i = parts.length - 1; i >= 0; i--) {
    if (/^ou\s*=/i.test(parts[i]!)) seen++;
    if (seen === depth) return parts.slice(i).join(',');
  }
  return userDn;
}

function values(entry: Entry, attribute: string): string[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attribute.toLowerCase());
  const v = key === undefined ? undefined : entry[key];
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
}

const mark = (dn: string) => (LDAP_MARK + dn).slice(0, MAX_DESCRIPTION);
const owned = (description: string) => description.startsWith(LDAP_MARK);

// --- reading LDAP ---------------------------------------------------------------------------------

export async function bindPassword(config: LdapConfig): Promise<string> {
  if (config.bindPasswordFile) return (await readFile(config.bindPasswordFile, 'utf8')).replace(/\r?\n$/, '');
  return config.bindPassword ?? '';
}

async function searchAll(client: Client, base: string, filter: string, attributes: string[], phase: string, progress?: ProgressFn): Promise<Entry[]> {
  const out: Entry[] = [];
  progress?.({ phase, done: 0, unit: 'entries' });
  for await (const page of client.searchPaginated(base, { scope: 'sub', filter, attributes, paged: { pageSize: PAGE_SIZE } })) {
    out.push(...page.searchEntries);
    progress?.({ phase, done: out.length, unit: 'entries' });
  }
  return out;
}

/** Reads the users and groups the configuration selects, as Perch names them. */
export async function readLdap(config: LdapConfig, domain: string, progress?: ProgressFn): Promise<LdapSnapshot> {
  const client = new Client({ url: config.url, timeout: config.timeoutMs, connectTimeout: config.timeoutMs });
  const warnings: string[] = [];
  try {
    if (config.bindDn) await client.bind(config.bindDn, await bindPassword(config));
    const userEntries = await searchAll(client, config.userBaseDn ?? config.baseDn, config.userFilter, [config.userIdAttribute], 'reading users', progress);
    const groupEntries = await searchAll(client, config.groupBaseDn ?? config.baseDn, config.groupFilter, [config.groupNameAttribute, config.memberAttribute], 'reading groups', progress);

    const users: LdapUser[] = [];
    const userByDn = new Map<string, string>();
    const userById = new Map<string, string>();
    for (const e of userEntries) {
      const id = values(e, config.userIdAttribute)[0];
      let jid: string;
      try {
        if (!id) throw new Error(`no ${config.userIdAttribute}`);
        jid = canonical(`${id}@${domain}`);
      } catch (err) {
        warnings.push(`user ${e.dn} skipped: ${(err as Error).message}`);
        continue;
      }
      if (userById.has(id.toLowerCase())) { warnings.push(`user ${e.dn} skipped: ${jid} already comes from another entry`); continue; }
      users.push({ dn: e.dn, jid, ou: config.ouFromDn ? ouOfDn(e.dn) : null });
      userByDn.set(normaliseDn(e.dn), jid);
      userById.set(id.toLowerCase(), jid);
    }

    const groupByDn = new Map<string, string>();
    const named: { entry: Entry; name: string }[] = [];
    for (const e of groupEntries) {
      const cn = values(e, config.groupNameAttribute)[0];
      let name: string;
      try {
        if (!cn) throw new Error(`no ${config.groupNameAttribute}`);
        name = groupName(cn);
      } catch (err) {
        warnings.push(`group ${e.dn} skipped: ${(err as Error).message}`);
        continue;
      }
      if (named.some((n) => n.name === name)) { warnings.push(`group ${e.dn} skipped: group:${name} already comes from another entry`); continue; }
      named.push({ entry: e, name });
      groupByDn.set(normaliseDn(e.dn), name);
    }
    const groups: LdapGroup[] = named.map(({ entry, name }) => {
      const members = new Set<string>();
      let unresolved = 0;
      for (const v of values(entry, config.memberAttribute)) {
        if (config.memberAttribute === 'memberUid') {
          const jid = userById.get(v.trim().toLowerCase());
          if (jid) members.add(jid); else unresolved++;
          continue;
        }
        const dn = normaliseDn(v);
        const jid = userByDn.get(dn);
        const group = groupByDn.get(dn);
        if (jid) members.add(jid);
        else if (group && group !== name) members.add(`group:${group}`);
        else if (!group) unresolved++;
      }
      // groupOfNames needs a member: directories put a placeholder (the group itself, or an empty DN).
      if (unresolved > 0) warnings.push(`group:${name}: ${unresolved} member(s) neither a selected user nor a group, left out`);
      return { dn: entry.dn, name, members: [...members].sort() };
    });
    return { users, groups, warnings };
  } finally {
    await client.unbind().catch(() => {});
  }
}

// --- the plan --------------------------------------------------------------------------------------

/** What Perch holds, as the plan compares it. */
export interface DirectoryState {
  /** Every group: its description and (for the ones the sync owns) direct members. */
  groups: Map<string, { description: string; members: string[] }>;
  units: Map<string, string>;
  /** The org unit of the users the plan looks at. */
  userUnits: Map<string, string | null>;
}

export async function readState(ctx: ChatOpContext, snapshot: LdapSnapshot): Promise<DirectoryState> {
  const d = ctx.stores.directory;
  const groups = new Map<string, { description: string; members: string[] }>();
  for (const g of await d.listGroups()) {
    const wanted = owned(g.description) || snapshot.groups.some((x) => x.name === g.name);
    const members = wanted ? (await d.getGroup(g.name))?.members ?? [] : [];
    groups.set(g.name, { description: g.description, members });
  }
  const units = new Map((await d.listOrgUnits()).map((u) => [u.path, u.description] as const));
  // The directory's users, and whoever sits in a unit the sync made (they may have left LDAP).
  const users = new Set(snapshot.users.map((u) => u.jid));
  for (const [path, description] of units) {
    // A unit's subtree holds its children's users: expanding the outermost owned units is enough.
    const parent = path.slice(0, path.lastIndexOf('/'));
    if (!owned(description) || owned(units.get(parent) ?? '')) continue;
    for (const u of await d.expandUsers(`ou:${path}`, ctx.domain, EXPAND_LIMIT)) users.add(u);
  }
  const entries = await d.userEntries([...users]);
  const userUnits = new Map<string, string | null>();
  for (const u of users) userUnits.set(u, entries.get(u)?.ou ?? null);
  return { groups, units, userUnits };
}

export function planSync(snapshot: LdapSnapshot, state: DirectoryState, config: Pick<LdapConfig, 'ouFromDn'>): SyncPlan {
  const warnings = [...snapshot.warnings];
  const plan: SyncPlan = { unitsAdded: [], groupsAdded: [], membersAdded: [], membersRemoved: [], moves: [], groupsRemoved: [], unitsRemoved: [], warnings };

  // Groups: an administrator's group of the same name is not taken over.
  const managed = new Set<string>();
  for (const g of snapshot.groups) {
    const have = state.groups.get(g.name);
    if (have && !owned(have.description)) {
      warnings.push(`group:${g.name} exists and was not made by the LDAP sync: left alone (${g.dn})`);
      continue;
    }
    managed.add(g.name);
    if (!have) plan.groupsAdded.push({ name: g.name, dn: g.dn });
  }
  for (const g of snapshot.groups) {
    if (!managed.has(g.name)) continue;
    const before = new Set(state.groups.get(g.name)?.members ?? []);
    // A nested group left alone (an administrator's of the same name) is not the one LDAP names: left out.
    const after = new Set(g.members.filter((m) => !m.startsWith('group:') || managed.has(m.slice(6))));
    for (const m of after) if (!before.has(m)) plan.membersAdded.push({ group: g.name, member: m });
    for (const m of before) if (!after.has(m)) plan.membersRemoved.push({ group: g.name, member: m });
  }
  const inLdap = new Set(snapshot.groups.map((g) => g.name));
  for (const [name, g] of state.groups) if (owned(g.description) && !inLdap.has(name)) plan.groupsRemoved.push(name);

  if (!config.ouFromDn) return plan;

  // Org units: every unit on a user's path, outermost first.
  const wantedUnits = new Map<string, string>();
  for (const u of snapshot.users) {
    if (!u.ou) continue;
    for (const p of ouLineage(u.ou)) if (!wantedUnits.has(p)) wantedUnits.set(p, unitDn(u.dn, p));
  }
  for (const [path, dn] of [...wantedUnits].sort(([a], [b]) => a.localeCompare(b))) {
    if (!state.units.has(path)) plan.unitsAdded.push({ path, dn });
  }
  // Users: into the unit their DN names; those no longer in LDAP out of the sync's units.
  const finalUnit = new Map(state.userUnits);
  const ldapUsers = new Set<string>();
  for (const u of snapshot.users) {
    ldapUsers.add(u.jid);
    const from = state.userUnits.get(u.jid) ?? null;
    if (from !== u.ou) { plan.moves.push({ user: u.jid, from, to: u.ou }); finalUnit.set(u.jid, u.ou); }
  }
  for (const [user, from] of state.userUnits) {
    if (ldapUsers.has(user) || from === null || !owned(state.units.get(from) ?? '')) continue;
    plan.moves.push({ user, from, to: null });
    finalUnit.set(user, null);
  }
  // Units the sync made that no user needs any more, deepest first (an administrator's user still
  // in one keeps it: the delete is refused and reported).
  const used = new Set<string>();
  for (const ou of finalUnit.values()) if (ou) for (const p of ouLineage(ou)) used.add(p);
  plan.unitsRemoved = [...state.units]
    .filter(([path, description]) => owned(description) && !wantedUnits.has(path) && !used.has(path))
    .map(([path]) => path)
    .sort((a, b) => b.split('/').length - a.split('/').length || a.localeCompare(b));
  return plan;
}

// --- applying ---------------------------------------------------------------------------------------

function groupBy<T>(list: T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const x of list) {
    const k = key(x);
    const l = out.get(k);
    if (l) l.push(x); else out.set(k, [x]);
  }
  return out;
}

/**
 * Applies a plan through the directory operations, in an order where each step is valid: units and
 * groups first, then every removal of a member before any addition (a nesting LDAP turned round is
 * no cycle on the way), users' units, and last the groups and units that went away. A refused step
 * is a warning and the rest goes on; what was refused is left out of the report's changes.
 */
export async function applyPlan(ctx: ChatOpContext, plan: SyncPlan, progress?: ProgressFn): Promise<Omit<SyncReport, 'dryRun' | 'users' | 'groups' | 'ms' | 'accountsAdded'>> {
  const actor: ChatActor = { kind: 'local' };
  const removals = groupBy(plan.membersRemoved, (m) => m.group);
  const additions = groupBy(plan.membersAdded, (m) => m.group);
  const total = plan.unitsAdded.length + plan.groupsAdded.length + removals.size + additions.size + plan.moves.length + plan.groupsRemoved.length + plan.unitsRemoved.length;
  let done = 0;
  const phase = 'applying changes';
  const step = () => progress?.({ phase, done: ++done, total, unit: 'changes' });
  progress?.({ phase, done: 0, total, unit: 'changes' });
  const warnings = [...plan.warnings];
  const out = {
    groupsAdded: [] as string[], groupsRemoved: [] as string[], unitsAdded: [] as string[], unitsRemoved: [] as string[],
    membersAdded: [] as { group: string; member: string }[], membersRemoved: [] as { group: string; member: string }[],
    moves: [] as SyncPlan['moves'], warnings,
  };
  const attempt = async (what: string, fn: () => Promise<unknown>): Promise<boolean> => {
    try {
      await fn();
      return true;
    } catch (e) {
      warnings.push(`${what}: ${(e as Error).message}`);
      return false;
    } finally {
      step();
    }
  };
  for (const u of plan.unitsAdded) {
    if (await attempt(`org unit ${u.path}`, () => addOrgUnit(ctx, actor, u.path, mark(u.dn)))) out.unitsAdded.push(u.path);
  }
  for (const g of plan.groupsAdded) {
    if (await attempt(`group:${g.name}`, () => createGroup(ctx, actor, g.name, { description: mark(g.dn) }))) out.groupsAdded.push(g.name);
  }
  for (const [group, list] of removals) {
    const members = list.map((m) => m.member);
    if (await attempt(`group:${group} members`, () => updateGroup(ctx, actor, group, { members: { remove: members } }))) out.membersRemoved.push(...list);
  }
  for (const [group, list] of additions) {
    if (!out.groupsAdded.includes(group) && plan.groupsAdded.some((g) => g.name === group)) { step(); continue; }
    const members = list.map((m) => m.member);
    if (await attempt(`group:${group} members`, () => updateGroup(ctx, actor, group, { members: { add: members } }))) out.membersAdded.push(...list);
  }
  for (const m of plan.moves) {
    if (await attempt(`${m.user} into ${m.to ?? 'no org unit'}`, () => setUserOrgUnit(ctx, actor, m.user, m.to))) out.moves.push(m);
  }
  for (const g of plan.groupsRemoved) {
    if (await attempt(`group:${g}`, () => deleteGroup(ctx, actor, g))) out.groupsRemoved.push(g);
  }
  for (const p of plan.unitsRemoved) {
    if (await attempt(`org unit ${p}`, () => deleteOrgUnit(ctx, actor, p))) out.unitsRemoved.push(p);
  }
  return out;
}

/** Directory users of this domain with no account yet (usernames). */
async function missingAccounts(ctx: ChatOpContext, snapshot: LdapSnapshot): Promise<string[]> {
  const out: string[] = [];
  for (const u of snapshot.users) {
    const at = u.jid.lastIndexOf('@');
    if (u.jid.slice(at + 1) !== ctx.domain) continue;
    const username = u.jid.slice(0, at);
    if (!(await ctx.stores.users.get(username))) out.push(username);
  }
  return out;
}

/**
 * Creates accounts for directory users whose passwords LDAP checks: a random local password nobody
 * knows, so SASL PLAIN (checked by LDAP) signs them in and SCRAM does not until an administrator sets one.
 */
async function createAccounts(ctx: ChatOpContext, usernames: string[], iterations: number, warnings: string[]): Promise<string[]> {
  const added: string[] = [];
  for (const username of usernames) {
    const r = await addUser(ctx.stores, ctx.domain, username, randomBytes(24).toString('base64url'), iterations);
    if (r === 'ok') added.push(`${username}@${ctx.domain}`);
    else if (r === 'invalid') warnings.push(`${username}: not a valid username, no account created`);
  }
  return added;
}

/** RFC 4515 escaping of a value inside a filter. */
export function escapeFilterValue(v: string): string {
  return v.replace(/[\\*()\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * Checks a directory user's password with a bind as that user's entry: true or false, or null when
 * the configured search finds no such user (their local password then decides).
 */
export async function checkLdapPassword(config: LdapConfig, username: string, password: string): Promise<boolean | null> {
  const client = new Client({ url: config.url, timeout: config.timeoutMs, connectTimeout: config.timeoutMs });
  try {
    if (config.bindDn) await client.bind(config.bindDn, await bindPassword(config));
    const filter = `(&${config.userFilter}(${config.userIdAttribute}=${escapeFilterValue(username)}))`;
    const { searchEntries } = await client.search(config.userBaseDn ?? config.baseDn, { scope: 'sub', filter, attributes: ['1.1'], sizeLimit: 2 });
    if (searchEntries.length === 0) return null;
    if (searchEntries.length > 1) return false;
    // An empty password is an unauthenticated bind, which LDAP servers answer with success (RFC 4513 5.1.2).
    if (password === '') return false;
    const user = new Client({ url: config.url, timeout: config.timeoutMs, connectTimeout: config.timeoutMs });
    try {
      await user.bind(searchEntries[0]!.dn, password);
      return true;
    } catch (e) {
      if (e instanceof InvalidCredentialsError) return false;
      throw e;
    } finally {
      await user.unbind().catch(() => {});
    }
  } finally {
    await client.unbind().catch(() => {});
  }
}

// One sync at a time per database handle: a scheduled one and an administrator's do not interleave.
const running = new WeakMap<object, Promise<unknown>>();

/** Reads LDAP, compares and (unless dry) applies: the one implementation every face and the timer call. */
export async function syncDirectory(ctx: ChatOpContext, config: LdapConfig, opts: { dryRun?: boolean; progress?: ProgressFn; scramIterations?: number } = {}): Promise<SyncReport> {
  const before = running.get(ctx.stores) ?? Promise.resolve();
  const run = before.catch(() => {}).then(async () => {
    const started = Date.now();
    const snapshot = await readLdap(config, ctx.domain, opts.progress);
    const plan = planSync(snapshot, await readState(ctx, snapshot), config);
    const counts = { users: snapshot.users.length, groups: snapshot.groups.length };
    const accounts = config.auth === 'ldap' ? await missingAccounts(ctx, snapshot) : [];
    if (opts.dryRun) {
      return {
        dryRun: true, ...counts, accountsAdded: accounts.map((a) => `${a}@${ctx.domain}`),
        groupsAdded: plan.groupsAdded.map((g) => g.name), groupsRemoved: plan.groupsRemoved,
        membersAdded: plan.membersAdded, membersRemoved: plan.membersRemoved,
        unitsAdded: plan.unitsAdded.map((u) => u.path), unitsRemoved: plan.unitsRemoved,
        moves: plan.moves, warnings: plan.warnings, ms: Date.now() - started,
      } satisfies SyncReport;
    }
    const accountsAdded = await createAccounts(ctx, accounts, opts.scramIterations ?? 4096, plan.warnings);
    const applied = await applyPlan(ctx, plan, opts.progress);
    return { dryRun: false, ...counts, accountsAdded, ...applied, ms: Date.now() - started } satisfies SyncReport;
  });
  running.set(ctx.stores, run);
  return run;
}

/** The report as lines for a terminal and a log. */
export function reportLines(r: SyncReport): string[] {
  const verb = r.dryRun ? 'would ' : '';
  const lines = [`read ${r.users} users and ${r.groups} groups from LDAP in ${r.ms} ms${r.dryRun ? ' (dry run: nothing changed)' : ''}`];
  for (const a of r.accountsAdded) lines.push(`${verb}create account ${a}`);
  for (const u of r.unitsAdded) lines.push(`${verb}add org unit ${u}`);
  for (const g of r.groupsAdded) lines.push(`${verb}add group:${g}`);
  for (const m of r.membersAdded) lines.push(`${verb}add ${m.member} to group:${m.group}`);
  for (const m of r.membersRemoved) lines.push(`${verb}remove ${m.member} from group:${m.group}`);
  for (const m of r.moves) lines.push(`${verb}move ${m.user} from ${m.from ?? '(no org unit)'} to ${m.to ?? '(no org unit)'}`);
  for (const g of r.groupsRemoved) lines.push(`${verb}delete group:${g}`);
  for (const u of r.unitsRemoved) lines.push(`${verb}delete org unit ${u}`);
  const changes = r.accountsAdded.length + r.unitsAdded.length + r.groupsAdded.length + r.membersAdded.length + r.membersRemoved.length + r.moves.length + r.groupsRemoved.length + r.unitsRemoved.length;
  if (changes === 0) lines.push('no changes');
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines;
}
