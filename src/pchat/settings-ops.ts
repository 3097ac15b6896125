// The service-wide operations of the admin service layer: add-ins, service settings, policies, and what
// a user sees of their own rooms ("my rooms").
import { principalOfKey } from '../../protocol/principal.js';
import type { AddinRecord, CategoryRecord, ChatPolicyRecord, ChatRoomRecord, ChatServiceSettings } from '../../storage/types.js';
import { canCreate, covers, inScope, isDenied, isMember } from './access.js';
import { groupName } from './directory-ops.js';
import {
  ChatOpError, canonical, checkText, inTransaction, modelOf, nameTaken, publish, requireAdmin, serviceOf, svcModel,
  type ChatActor, type ChatOpContext,
} from './operations.js';

// --- add-ins ------------------------------------------------------------------------------------------

function checkUrl(raw: string): string {
  const v = raw.trim();
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ChatOpError(`${raw}: not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ChatOpError(`${raw}: an add-in URL is http or https`, 'not-acceptable');
  return v;
}

export async function createAddin(ctx: ChatOpContext, actor: ChatActor, service: string | null, name: string, url: string): Promise<AddinRecord> {
  requireAdmin(ctx, actor, 'manage add-ins');
  const model = await modelOf(ctx);
  const svc = svcModel(model, serviceOf(ctx, service));
  const n = checkText('the add-in name', name, { required: true });
  if (svc.addin(n)) throw new ChatOpError(`the name ${n} is already used by an add-in`, 'conflict');
  const rec: AddinRecord = { service: svc.domain, name: n, url: checkUrl(url) };
  await nameTaken(ctx.stores.chat.putAddin(rec));
  await publish(model, { kind: 'addin', service: svc.domain, names: [n] });
  return rec;
}

export async function updateAddin(ctx: ChatOpContext, actor: ChatActor, service: string | null, name: string, changes: { name?: string; url?: string }): Promise<AddinRecord> {
  requireAdmin(ctx, actor, 'manage add-ins');
  const model = await modelOf(ctx);
  const svc = svcModel(model, serviceOf(ctx, service));
  const before = svc.addin(name.trim());
  if (!before) throw new ChatOpError(`no add-in ${name} in ${svc.domain}`, 'item-not-found');
  const n = changes.name !== undefined ? checkText('the add-in name', changes.name, { required: true }) : before.name;
  const other = svc.addin(n);
  if (other && other !== before) throw new ChatOpError(`the name ${n} is already used by an add-in`, 'conflict');
  const rec: AddinRecord = { service: svc.domain, name: n, url: changes.url !== undefined ? checkUrl(changes.url) : before.url };
  await nameTaken(ctx.stores.chat.putAddin(rec, before.name));
  const users = n !== before.name ? [...svc.rooms.values()].filter((r) => r.addin === before.name).map((r) => r.room) : [];
  await publish(model, { kind: 'addin', service: svc.domain, names: [before.name, n] });
  if (users.length > 0) await publish(model, { kind: 'room', service: svc.domain, names: users });
  return rec;
}

/** Deletes an add-in; one that rooms still show is refused unless force (then the rooms lose it). */
export async function deleteAddin(ctx: ChatOpContext, actor: ChatActor, service: string | null, name: string, force = false): Promise<{ rooms: string[] }> {
  requireAdmin(ctx, actor, 'manage add-ins');
  const model = await modelOf(ctx);
  const svc = svcModel(model, serviceOf(ctx, service));
  const a = svc.addin(name.trim());
  if (!a) throw new ChatOpError(`no add-in ${name} in ${svc.domain}`, 'item-not-found');
  const users = [...svc.rooms.values()].filter((r) => r.addin === a.name);
  if (users.length > 0 && !force) {
    throw new ChatOpError(`add-in ${a.name} is used by ${users.length} room(s) (${users.slice(0, 5).map((r) => r.room).join(', ')}${users.length > 5 ? ', …' : ''}); force removes it from them`, 'conflict');
  }
  await inTransaction(ctx.stores, async (tx) => {
    for (const r of users) {
      const current = await tx.chat.room(svc.domain, r.room);
      if (current && current.addin === a.name) await tx.chat.putRoom({ ...current, addin: null });
    }
    await tx.chat.deleteAddin(svc.domain, a.name);
  });
  await publish(model, { kind: 'addin', service: svc.domain, names: [a.name] });
  if (users.length > 0) await publish(model, { kind: 'room', service: svc.domain, names: users.map((r) => r.room) });
  return { rooms: users.map((r) => r.room) };
}

export async function listAddins(ctx: ChatOpContext, actor: ChatActor, service: string | null): Promise<(AddinRecord & { rooms: number })[]> {
  requireAdmin(ctx, actor, 'manage add-ins');
  const model = await modelOf(ctx);
  const svc = svcModel(model, serviceOf(ctx, service));
  const counts = new Map<string, number>();
  for (const r of svc.rooms.values()) if (r.addin) counts.set(r.addin, (counts.get(r.addin) ?? 0) + 1);
  return [...svc.addins.values()].sort((a, b) => a.name.localeCompare(b.name)).map((a) => ({ ...a, rooms: counts.get(a.name) ?? 0 }));
}

// --- service settings and policies ------------------------------------------------------------------

export async function getServiceSettings(ctx: ChatOpContext, actor: ChatActor, service: string | null): Promise<ChatServiceSettings & { service: string }> {
  requireAdmin(ctx, actor, 'read the service settings');
  const model = await modelOf(ctx);
  const svc = svcModel(model, serviceOf(ctx, service));
  return { service: svc.domain, ...svc.settings };
}

/** Largest value the settings' columns hold. */
const INT32 = 2_147_483_647;

function intIn(what: string, v: number, min: number, max = INT32): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new ChatOpError(`${what} must be a whole number ${max === INT32 ? `of at least ${min}` : `from ${min} to ${max}`}`, 'not-acceptable');
  }
  return v;
}

export async function setServiceSettings(ctx: ChatOpContext, actor: ChatActor, service: string | null, changes: Partial<ChatServiceSettings>): Promise<ChatServiceSettings & { service: string }> {
  requireAdmin(ctx, actor, 'change the service settings');
  const model = await modelOf(ctx);
  const svc = svcModel(model, serviceOf(ctx, service));
  const cur = svc.settings;
  const next: ChatServiceSettings = {
    defaultHistory: changes.defaultHistory !== undefined ? intIn('defaultHistory', changes.defaultHistory, 1, 500) : cur.defaultHistory,
    maxFileSizeKb: changes.maxFileSizeKb !== undefined ? intIn('maxFileSizeKb', changes.maxFileSizeKb, 1) : cur.maxFileSizeKb,
    participantUpdateLimit: changes.participantUpdateLimit !== undefined ? intIn('participantUpdateLimit', changes.participantUpdateLimit, 1) : cur.participantUpdateLimit,
    roomManagementUrl: changes.roomManagementUrl !== undefined ? (changes.roomManagementUrl.trim() === '' ? '' : checkUrl(changes.roomManagementUrl)) : cur.roomManagementUrl,
  };
  await ctx.stores.chat.putSettings(svc.domain, next);
  await publish(model, { kind: 'settings', service: svc.domain });
  return { service: svc.domain, ...next };
}

export type PolicyScope = ChatPolicyRecord['scope'];

export async function getPolicies(ctx: ChatOpContext, actor: ChatActor): Promise<ChatPolicyRecord[]> {
  requireAdmin(ctx, actor, 'read policies');
  const model = await modelOf(ctx);
  return model.policyList();
}

/** Turns persistent chat on or off (null: unset) globally, for a group or for a user. */
export async function setPolicy(ctx: ChatOpContext, actor: ChatActor, scope: PolicyScope, subject: string, enabled: boolean | null): Promise<ChatPolicyRecord[]> {
  requireAdmin(ctx, actor, 'change policies');
  const model = await modelOf(ctx);
  let key = '';
  if (scope === 'group') {
    key = groupName(subject);
    if (!(await ctx.stores.directory.getGroup(key))) throw new ChatOpError(`principal not provisioned: group:${key}`, 'item-not-found');
  } else if (scope === 'user') {
    key = canonical(subject);
    if (principalOfKey(key).kind !== 'user') throw new ChatOpError(`${subject}: not a user (a bare JID)`);
  } else if (scope !== 'global') {
    throw new ChatOpError(`unknown policy scope ${String(scope)} (global, group, user)`);
  }
  await ctx.stores.chat.setPolicy(scope, key, enabled);
  await publish(model, { kind: 'policy' });
  return model.policyList();
}

// --- what a user sees of their own rooms -----------------------------------------------------------

export interface Associations {
  rooms: { room: ChatRoomRecord; member: boolean; manager: boolean; presenter: boolean }[];
  /** Categories where the user may create rooms. */
  categories: CategoryRecord[];
}

/** The rooms where a user is member, manager or presenter (by the rules), and where they may create. */
export async function associations(ctx: ChatOpContext, service: string, bare: string): Promise<Associations> {
  const model = await modelOf(ctx);
  const svc = svcModel(model, serviceOf(ctx, service));
  const s = await model.subjectOf(bare);
  const out: Associations = { rooms: [], categories: [] };
  for (const r of [...svc.rooms.values()].sort((a, b) => a.room.localeCompare(b.room))) {
    const c = svc.categoryOf(r);
    if (!c || r.disabled || !s.enabled) continue;
    // A member of an open room with no list is everyone in scope: listed only when named.
    const member = isMember(s, r, c) && (r.members !== null || r.privacy !== 'open');
    const manager = covers(s.principals, r.managers) && !isDenied(s, c);
    const presenter = r.type === 'auditorium' && covers(s.principals, r.presenters) && inScope(s, c);
    if (member || manager || presenter) out.rooms.push({ room: r, member, manager, presenter });
  }
  for (const c of svc.categories.values()) if (s.enabled && covers(s.principals, c.creators) && canCreate({ ...s, admin: false }, c)) out.categories.push(c);
  out.categories.sort((a, b) => a.name.localeCompare(b.name));
  return out;
}
