// The directory operations of the admin service layer: groups (nested), org units and a user's unit.
// Admins only; each change names its reach (the users and principals whose sets it alters), so every
// node forgets only those cached principal sets (directory.ts).
import { ouLineage, normaliseGroupName, normaliseOuPath, principalOfKey, PrincipalError } from '../../protocol/principal.js';
import type { GroupRecord, GroupSummary, OrgUnitRecord } from '../../storage/types.js';
import type { ChatModel } from './model.js';
import type { DirectoryScope } from './directory.js';
import {
  ChatOpError, added, applyChange, canonical, checkText, inTransaction, modelOf, publish, requireAdmin,
  type ChatActor, type ChatOpContext, type ListChange,
} from './operations.js';


export function groupName(raw: string): string {
  try {
    return normaliseGroupName(raw.replace(/^group:/i, ''));
  } catch (e) {
    if (e instanceof PrincipalError) throw new ChatOpError(e.message);
    throw e;
  }
}

function ouPath(raw: string): string {
  try {
    return normaliseOuPath(raw.replace(/^ou:/i, ''));
  } catch (e) {
    if (e instanceof PrincipalError) throw new ChatOpError(e.message);
    throw e;
  }
}

/** Group members are users and groups (nested); groups must exist and not contain this one. */
async function checkGroupMembers(ctx: ChatOpContext, model: ChatModel, group: string, keys: readonly string[]): Promise<void> {
  for (const key of keys) {
    const p = principalOfKey(key);
    if (p.kind === 'ou' || p.kind === 'domain') throw new ChatOpError(`${key}: a group holds users and groups only`);
    if (p.kind !== 'group') continue;
    if (p.name === group) throw new ChatOpError(`group:${group} cannot contain itself`, 'not-acceptable');
    if (!(await ctx.stores.directory.getGroup(p.name))) throw new ChatOpError(`principal not provisioned: ${key}`, 'item-not-found');
    // A group inside this one (at any depth) cannot also hold it.
    if (model.directory.groupLineage(group).includes(p.name) || (await groupContains(ctx, p.name, group))) {
      throw new ChatOpError(`group:${p.name} already contains group:${group}: nesting it there would make a cycle`, 'not-acceptable');
    }
  }
}

/** Does group (nested) contain inner? */
async function groupContains(ctx: ChatOpContext, group: string, inner: string): Promise<boolean> {
  const seen = new Set<string>([group]);
  const stack = [group];
  while (stack.length > 0) {
    const g = await ctx.stores.directory.getGroup(stack.pop()!);
    for (const m of g?.members ?? []) {
      if (!m.startsWith('group:')) continue;
      const n = m.slice(6);
      if (n === inner) return true;
      if (!seen.has(n)) { seen.add(n); stack.push(n); }
    }
  }
  return false;
}

/**
 * Whose principal sets a change of a group's direct members alters: the users added or removed, and
 * everyone holding a group added or removed (their sets gain or lose this group and those above it).
 */
function groupEditScope(changed: readonly string[]): DirectoryScope {
  const users = changed.filter((m) => !m.startsWith('group:'));
  const keys = changed.filter((m) => m.startsWith('group:'));
  return { users, keys, edges: keys.length > 0 };
}

export async function createGroup(ctx: ChatOpContext, actor: ChatActor, name: string, input: { description?: string; members?: ListChange } = {}): Promise<GroupRecord> {
  requireAdmin(ctx, actor, 'manage groups');
  const model = await modelOf(ctx);
  const g = groupName(name);
  if (await ctx.stores.directory.getGroup(g)) throw new ChatOpError(`group:${g} already exists`, 'conflict');
  const description = checkText('the description', input.description ?? '');
  const members = applyChange([], input.members) ?? [];
  await checkGroupMembers(ctx, model, g, members);
  await inTransaction(ctx.stores, async (tx) => {
    await tx.directory.putGroup(g, description);
    if (members.length > 0) await tx.directory.editGroupMembers(g, { add: members, remove: [] });
  });
  await publish(model, { kind: 'directory', directory: groupEditScope(members) });
  return { name: g, description, members: [...members].sort() };
}

export async function updateGroup(ctx: ChatOpContext, actor: ChatActor, name: string, input: { description?: string; members?: ListChange }): Promise<{ before: GroupRecord; after: GroupRecord }> {
  requireAdmin(ctx, actor, 'manage groups');
  const model = await modelOf(ctx);
  const g = groupName(name);
  const before = await ctx.stores.directory.getGroup(g);
  if (!before) throw new ChatOpError(`principal not provisioned: group:${g}`, 'item-not-found');
  const description = input.description !== undefined ? checkText('the description', input.description) : before.description;
  const members = applyChange(before.members, input.members) ?? [];
  await checkGroupMembers(ctx, model, g, added(before.members, members));
  const add = added(before.members, members);
  const remove = before.members.filter((m) => !members.includes(m));
  await inTransaction(ctx.stores, async (tx) => {
    if (description !== before.description) await tx.directory.putGroup(g, description);
    if (add.length > 0 || remove.length > 0) await tx.directory.editGroupMembers(g, { add, remove });
  });
  await publish(model, { kind: 'directory', directory: groupEditScope([...add, ...remove]) });
  return { before, after: { name: g, description, members: [...members].sort() } };
}

/** Deletes a group (its nesting too). Lists that name it keep the entry, which then covers nobody. */
export async function deleteGroup(ctx: ChatOpContext, actor: ChatActor, name: string): Promise<void> {
  requireAdmin(ctx, actor, 'manage groups');
  const model = await modelOf(ctx);
  const g = groupName(name);
  if (!(await ctx.stores.directory.deleteGroup(g))) throw new ChatOpError(`principal not provisioned: group:${g}`, 'item-not-found');
  await publish(model, { kind: 'directory', directory: { keys: [`group:${g}`], edges: true } });
}

export async function listGroups(ctx: ChatOpContext, actor: ChatActor): Promise<GroupSummary[]> {
  requireAdmin(ctx, actor, 'manage groups');
  return ctx.stores.directory.listGroups();
}

export async function showGroup(ctx: ChatOpContext, actor: ChatActor, name: string): Promise<GroupRecord> {
  requireAdmin(ctx, actor, 'manage groups');
  const g = groupName(name);
  const rec = await ctx.stores.directory.getGroup(g);
  if (!rec) throw new ChatOpError(`principal not provisioned: group:${g}`, 'item-not-found');
  return rec;
}

/** Creates an org unit, or changes its description; true when created. */
export async function addOrgUnit(ctx: ChatOpContext, actor: ChatActor, path: string, description = ''): Promise<boolean> {
  requireAdmin(ctx, actor, 'manage org units');
  const model = await modelOf(ctx);
  const p = ouPath(path);
  const text = checkText('the description', description);
  // A unit's ancestors are units too (ou:/corp covers /corp/sales): the missing ones are made with it.
  const known = new Set((await ctx.stores.directory.listOrgUnits()).map((u) => u.path));
  const created = await inTransaction(ctx.stores, async (tx) => {
    for (const a of ouLineage(p).slice(0, -1)) if (!known.has(a)) await tx.directory.putOrgUnit(a, '');
    return tx.directory.putOrgUnit(p, text);
  });
  // New units hold nobody yet: no one's set changes.
  await publish(model, { kind: 'directory', directory: {} });
  return created;
}

export async function listOrgUnits(ctx: ChatOpContext, actor: ChatActor): Promise<OrgUnitRecord[]> {
  requireAdmin(ctx, actor, 'manage org units');
  return ctx.stores.directory.listOrgUnits();
}

export async function deleteOrgUnit(ctx: ChatOpContext, actor: ChatActor, path: string): Promise<void> {
  requireAdmin(ctx, actor, 'manage org units');
  const model = await modelOf(ctx);
  const p = ouPath(path);
  const r = await ctx.stores.directory.deleteOrgUnit(p);
  if (r === false) throw new ChatOpError(`principal not provisioned: ou:${p}`, 'item-not-found');
  if (r === 'not-empty') throw new ChatOpError(`ou:${p} still has users (in it or a unit below it): move them first`, 'conflict');
  await publish(model, { kind: 'directory', directory: { keys: [`ou:${p}`] } });
}

/** Puts a user into an org unit (null: none). */
export async function setUserOrgUnit(ctx: ChatOpContext, actor: ChatActor, user: string, path: string | null): Promise<void> {
  requireAdmin(ctx, actor, 'manage org units');
  const model = await modelOf(ctx);
  const key = canonical(user);
  if (principalOfKey(key).kind !== 'user') throw new ChatOpError(`${user}: not a user (a bare JID)`);
  const p = path === null || path.trim() === '' ? null : ouPath(path);
  if (!(await ctx.stores.directory.setUserOrgUnit(key, p))) throw new ChatOpError(`principal not provisioned: ou:${p}`, 'item-not-found');
  await publish(model, { kind: 'directory', directory: { users: [key] } });
}
