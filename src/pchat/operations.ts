// The persistent-chat operations of the admin service layer: categories and rooms here, with what
// every operation shares (context, refusals, scope checks, publishing); groups and org units in
// directory-ops.ts; add-ins, service settings and policies in settings-ops.ts. Whoever asks (ad-hoc
// commands, the CLI, a manager's XEP-0045 owner form or affiliation list), each operation checks the
// actor's right and the model's rules (access.ts), writes the database (in one transaction where
// several tables change), and publishes the change so every node applies it (live rooms re-check
// their occupants). A refused operation changes nothing.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { tryParseJid } from '../../protocol/jid.js';
import { PrincipalError, canonicalPrincipal, principalOfKey } from '../../protocol/principal.js';
import {
  NameTaken,
  type ChatRoomRecord, type CategoryRecord, type DataStores, type Db, type DbTx, type InvitationRecord, type RoomKind, type RoomPrivacy,
} from '../../storage/types.js';
import { createChatStore, createDirectoryStore } from '../../storage/sql-chat.js';
import { canCreate, canManage, covers, existsFor, inScope, isDenied, isMember, type Subject } from './access.js';
import { ChatModel, type ChatChange, type ServiceModel } from './model.js';
import { chatModelOf } from './module.js';
import type { Server } from '../context.js';

/** Who asks: a local admin (CLI through the socket, or offline), or an account (admin or not). */
export type ChatActor = { kind: 'local' } | { kind: 'account'; bare: string };

export type ChatOpCondition = 'bad-request' | 'not-acceptable' | 'forbidden' | 'item-not-found' | 'conflict' | 'not-allowed';

/** Why an operation was refused, with the XMPP condition the faces answer with. */
export class ChatOpError extends Error {
  constructor(message: string, readonly condition: ChatOpCondition = 'bad-request') {
    super(message);
  }
}

/** What the operations work with. model is null when no server runs (the CLI on a stopped data dir). */
export interface ChatOpContext {
  stores: DataStores;
  model: ChatModel | null;
  /** The server's domain (expanding domain principals, default service). */
  domain: string;
  /** Configured MUC service domains. */
  services: readonly string[];
  isAdmin(bare: string): boolean;
  /** Creates (or finds) the XEP-0045 room so it can be joined: persistent, named; absent offline. */
  ensureMucRoom?(service: string, room: string, name: string, description: string): Promise<void>;
  /** Destroys the live XEP-0045 room (occupants leave with the reason); used by room delete. */
  destroyMucRoom?(service: string, room: string, reason: string): Promise<void>;
  /** Routes a stanza (invitations); absent offline, where invitations are only stored. */
  route?(stanza: Element): void;
  /**
   * Offline only: tells the cluster's running nodes of a change (the CLI on a machine without a node
   * of a PostgreSQL + Redis cluster publishes on Redis).
   */
  broadcast?(change: ChatChange): Promise<void>;
}

/** A list edit: replace, add/remove, or clear (null list: a room inherits its category's scope). */
export interface ListChange { replace?: string[] | null; add?: string[]; remove?: string[] }

export interface RoomChanges {
  name?: string;
  description?: string;
  category?: string;
  privacy?: RoomPrivacy;
  type?: RoomKind;
  invitations?: 'inherit' | 'off';
  disabled?: boolean;
  addin?: string | null;
  members?: ListChange;
  managers?: ListChange;
  presenters?: ListChange;
}

export interface CategoryChanges {
  name?: string;
  description?: string;
  allowed?: ListChange;
  denied?: ListChange;
  creators?: ListChange;
  invitations?: boolean;
  fileUpload?: boolean;
  chatHistory?: boolean;
  editing?: boolean;
}

/** What a room change did besides the record: principals dropped (a move), invitations sent. */
export interface RoomUpdate {
  before: ChatRoomRecord;
  after: ChatRoomRecord;
  /** 'members: group:x' entries removed because the new category's scope excludes them (or the type change). */
  dropped: string[];
  /** Users invited (XEP-0249) because they became members. */
  invited: number;
}

export type { ChatRoomRecord, CategoryRecord };

/** Display names and descriptions. */
export const MAX_TEXT = 256;
/** Most users one membership change invites. */
export const MAX_INVITATIONS = 10_000;
/** Most users expanded to decide whether a group, unit or domain lies in a scope. */
const MAX_SCOPE_EXPANSION = 10_000;

// --- context ------------------------------------------------------------------------------------------

/**
 * Makes a governed room an XEP-0045 room too, when it is not one yet: persistent, named, listed
 * (the rules decide who sees and enters it).
 */
export async function ensureStoredMucRoom(stores: DataStores, service: string, room: string, name: string, description: string): Promise<void> {
  if (await stores.rooms.get(service, room)) return;
  await stores.rooms.put({
    service, name: room, config: { name, description, persistent: true, public: true },
    affiliations: {}, subject: null, createdAt: new Date(), persistent: true,
  });
}

/** The context of a running server: its model, its admins, its router for invitations. */
export function serverOpContext(server: Server): ChatOpContext {
  return {
    stores: server.stores,
    model: chatModelOf(server) ?? null,
    domain: server.domain,
    services: (server.config.muc.services ?? []).map((s) => s.domain),
    isAdmin: (bare) => server.isAdmin(bare),
    ensureMucRoom: (service, room, name, description) => ensureStoredMucRoom(server.stores, service, room, name, description),
    route: (stanza) => server.router.route(stanza),
  };
}

const offlineModels = new WeakMap<ChatOpContext, Promise<ChatModel>>();
const quiet = { warn: () => {}, error: () => {} };

/**
 * The model to check against: the running server's, or (offline) one built from the stores for
 * this context, kept current by the operations' own publish.
 */
export function modelOf(ctx: ChatOpContext): Promise<ChatModel> {
  if (ctx.model) return Promise.resolve(ctx.model);
  let m = offlineModels.get(ctx);
  if (!m) {
    const model = new ChatModel({
      stores: ctx.stores, isAdmin: (b) => ctx.isAdmin(b), nodeId: 'offline', log: quiet,
      ...(ctx.broadcast ? { broadcast: ctx.broadcast } : {}),
    }, ctx.services);
    m = model.start().then(() => model);
    m.catch(() => offlineModels.delete(ctx));
    offlineModels.set(ctx, m);
  }
  return m;
}

/** The service an operation is about: the one named, or the only one configured. */
export function serviceOf(ctx: ChatOpContext, service?: string | null): string {
  if (service) {
    const j = tryParseJid(service.trim());
    const d = j && !j.local && !j.resource ? j.domain : service.trim();
    if (!ctx.services.includes(d)) throw new ChatOpError(`${service} is not a MUC service of this server`, 'item-not-found');
    return d;
  }
  if (ctx.services.length === 1) return ctx.services[0]!;
  if (ctx.services.length === 0) throw new ChatOpError('this server has no MUC service', 'item-not-found');
  throw new ChatOpError(`this server has several MUC services (${ctx.services.join(', ')}): name one, or give the room's full JID`);
}

/** A room as an admin names it: its localpart (with the service given or the only one) or its full JID. */
export function roomRef(ctx: ChatOpContext, ref: string, service?: string | null): { service: string; room: string } {
  const raw = ref.trim();
  if (raw.includes('@')) {
    const j = tryParseJid(raw);
    if (!j || !j.local || j.resource) throw new ChatOpError(`${raw}: not a room JID (name@service)`);
    return { service: serviceOf(ctx, j.domain), room: j.local };
  }
  const svc = serviceOf(ctx, service);
  const j = tryParseJid(`${raw}@${svc}`);
  if (!j || !j.local || raw === '') throw new ChatOpError(`${raw}: not a room name (the localpart of its JID)`);
  return { service: svc, room: j.local };
}

const LOCAL_SUBJECT: Subject = { bare: '', principals: new Set(), admin: true, enabled: true };

export async function subjectOf(model: ChatModel, actor: ChatActor): Promise<Subject> {
  return actor.kind === 'local' ? LOCAL_SUBJECT : model.subjectOf(actor.bare);
}

export function isAdminActor(ctx: ChatOpContext, actor: ChatActor): boolean {
  return actor.kind === 'local' || ctx.isAdmin(actor.bare);
}

export function requireAdmin(ctx: ChatOpContext, actor: ChatActor, what: string): void {
  if (!isAdminActor(ctx, actor)) throw new ChatOpError(`only administrators ${what}`, 'forbidden');
}

export function svcModel(model: ChatModel, service: string): ServiceModel {
  const s = model.forService(service);
  if (!s) throw new ChatOpError(`${service} is not a MUC service of this server`, 'item-not-found');
  return s;
}

/**
 * Runs fn with stores whose writes share one transaction (the SQL stores bound to it), for
 * operations that change several tables; rolled back when fn throws.
 */
export async function inTransaction<R>(stores: DataStores, fn: (s: DataStores) => Promise<R>): Promise<R> {
  return stores.db.transaction(async (tx: DbTx) => {
    const db: Db = {
      kind: stores.db.kind,
      query: (sql, params) => tx.query(sql, params),
      queryPlannedOnce: (sql, params) => tx.query(sql, params),
      queryPrepared: (sql, params) => tx.query(sql, params),
      // Already inside one: nested writes join it.
      transaction: (inner) => inner(tx),
      warm: async (reads) => (await reads(db), 1),
      close: async () => {},
    };
    return fn({ ...stores, chat: createChatStore(db), directory: createDirectoryStore(db) });
  });
}

export async function publish(model: ChatModel, change: ChatChange): Promise<void> {
  await model.publish(change);
}

export function checkText(what: string, value: string, opts: { required?: boolean } = {}): string {
  const v = value.trim();
  if (opts.required && v === '') throw new ChatOpError(`${what} is empty`);
  if (v.length > MAX_TEXT) throw new ChatOpError(`${what} is longer than ${MAX_TEXT} characters`, 'not-acceptable');
  return v;
}

export function canonical(raw: string): string {
  try {
    return canonicalPrincipal(raw);
  } catch (e) {
    if (e instanceof PrincipalError) throw new ChatOpError(e.message);
    throw e;
  }
}

export function nameTaken<R>(p: Promise<R>): Promise<R> {
  return p.catch((e: unknown) => {
    if (e instanceof NameTaken) throw new ChatOpError(e.message, 'conflict');
    throw e;
  });
}

// --- principals and scope -------------------------------------------------------------------------

/** Applies a list change to a list; null means unset (a room inheriting its category's scope). */
export function applyChange(list: readonly string[] | null, change: ListChange | undefined): string[] | null {
  if (!change) return list ? [...list] : null;
  if (change.replace !== undefined) return change.replace === null ? null : [...new Set(change.replace.map(canonical))];
  const out = new Set(list ?? []);
  for (const a of change.add ?? []) out.add(canonical(a));
  for (const r of change.remove ?? []) out.delete(canonical(r));
  return [...out];
}

/** An add/remove edit (not a replacement or a clear). */
function isEdit(change: ListChange | undefined): boolean {
  return change !== undefined && change.replace === undefined;
}

/** Entries of after that were not in before. */
export function added(before: readonly string[] | null, after: readonly string[] | null): string[] {
  const had = new Set(before ?? []);
  return (after ?? []).filter((p) => !had.has(p));
}

/** Groups and org units named in the lists must exist: item-not-found otherwise. */
export async function requireProvisioned(stores: DataStores, keys: readonly string[]): Promise<void> {
  let units: Set<string> | null = null;
  for (const key of new Set(keys)) {
    const p = principalOfKey(key);
    if (p.kind === 'group') {
      if (!(await stores.directory.getGroup(p.name))) throw new ChatOpError(`principal not provisioned: ${key}`, 'item-not-found');
    } else if (p.kind === 'ou') {
      units ??= new Set((await stores.directory.listOrgUnits()).map((u) => u.path));
      if (!units.has(p.path)) throw new ChatOpError(`principal not provisioned: ${key}`, 'item-not-found');
    }
  }
}

/**
 * Why a principal lies outside a list pair (allowed minus denied), or null when it lies inside:
 * not structurally denied, and either structurally covered by allowed (for a user: their principal
 * set meets it) or every user it expands to inside.
 */
async function outside(ctx: ChatOpContext, model: ChatModel, key: string, allowed: readonly string[], denied: readonly string[]): Promise<string | null> {
  const dir = model.directory;
  const p = principalOfKey(key);
  if (p.kind === 'user') {
    const s = await model.subjectOf(key);
    if (covers(s.principals, denied)) return 'denied';
    return covers(s.principals, allowed) ? null : 'not allowed';
  }
  if (dir.structurallyCovered(key, denied)) return 'denied';
  if (dir.structurallyCovered(key, allowed)) return null;
  const users = await ctx.stores.directory.expandUsers(key, ctx.domain, MAX_SCOPE_EXPANSION + 1);
  if (users.length > MAX_SCOPE_EXPANSION) return `not listed itself, and more than ${MAX_SCOPE_EXPANSION} users to check`;
  await model.ensureSubjects(users);
  for (const u of users) {
    const s = await model.subjectOf(u);
    if (covers(s.principals, denied)) return `its user ${u} is denied`;
    if (!covers(s.principals, allowed)) return `its user ${u} is not allowed`;
  }
  return null;
}

/** Refuses the first principal outside the category's scope (not-acceptable, naming it and why). */
async function requireInScope(ctx: ChatOpContext, model: ChatModel, cat: Pick<CategoryRecord, 'name' | 'allowed' | 'denied'>, keys: readonly string[], role: string): Promise<void> {
  for (const key of new Set(keys)) {
    const why = await outside(ctx, model, key, cat.allowed, cat.denied);
    if (why) throw new ChatOpError(`${key} is outside the scope of category ${cat.name} (${role}: ${why})`, 'not-acceptable');
  }
}

/** The entries of a list the category's scope excludes. */
async function excluded(ctx: ChatOpContext, model: ChatModel, cat: CategoryRecord, keys: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const key of keys) if (await outside(ctx, model, key, cat.allowed, cat.denied)) out.push(key);
  return out;
}

// --- categories -----------------------------------------------------------------------------------

export interface CategoryInput extends CategoryChanges { name: string }

export function category(svc: ServiceModel, name: string): CategoryRecord {
  const c = svc.category(name.trim());
  if (!c) throw new ChatOpError(`no category ${name} in ${svc.domain}`, 'item-not-found');
  return c;
}

async function checkCategoryLists(ctx: ChatOpContext, model: ChatModel, rec: CategoryRecord, before: CategoryRecord | null): Promise<void> {
  const fresh = (after: readonly string[], prev: readonly string[] | undefined) => added(prev ?? [], after);
  await requireProvisioned(ctx.stores, [...fresh(rec.allowed, before?.allowed), ...fresh(rec.denied, before?.denied), ...fresh(rec.creators, before?.creators)]);
  // New creators lie in the (new) scope. Those listed before stay when the scope changes: access
  // is computed, so a creator the scope no longer covers creates nothing until it covers them again.
  await requireInScope(ctx, model, rec, fresh(rec.creators, before?.creators), 'creator');
}

export async function createCategory(ctx: ChatOpContext, actor: ChatActor, service: string | null, input: CategoryInput): Promise<CategoryRecord> {
  requireAdmin(ctx, actor, 'create categories');
  const model = await modelOf(ctx);
  const svc = svcModel(model, serviceOf(ctx, service));
  const name = checkText('the category name', input.name, { required: true });
  if (svc.category(name)) throw new ChatOpError(`the name ${name} is already used by a category`, 'conflict');
  const rec: CategoryRecord = {
    service: svc.domain, name,
    description: checkText('the description', input.description ?? ''),
    allowed: applyChange([], input.allowed) ?? [],
    denied: applyChange([], input.denied) ?? [],
    creators: applyChange([], input.creators) ?? [],
    invitations: input.invitations ?? false,
    fileUpload: input.fileUpload ?? false,
    chatHistory: input.chatHistory ?? true,
    editing: input.editing ?? true,
  };
  await checkCategoryLists(ctx, model, rec, null);
  await nameTaken(ctx.stores.chat.putCategory(rec));
  await publish(model, { kind: 'category', service: svc.domain, names: [name] });
  return rec;
}

/**
 * Changes a category. A new allowed/denied list keeps its rooms' lists as they are: access is
 * computed (members ∩ scope), so who the new scope excludes loses access at once, and regains it
 * if the scope is widened again. Only a room moved to another category has its lists purged.
 */
export async function updateCategory(ctx: ChatOpContext, actor: ChatActor, service: string | null, name: string, changes: CategoryChanges): Promise<{ before: CategoryRecord; after: CategoryRecord }> {
  requireAdmin(ctx, actor, 'change categories');
  const model = await modelOf(ctx);
  const svc = svcModel(model, serviceOf(ctx, service));
  const before = category(svc, name);
  const newName = changes.name !== undefined ? checkText('the category name', changes.name, { required: true }) : before.name;
  const other = svc.category(newName);
  if (other && other !== before) throw new ChatOpError(`the name ${newName} is already used by a category`, 'conflict');
  const after: CategoryRecord = {
    ...before,
    name: newName,
    description: changes.description !== undefined ? checkText('the description', changes.description) : before.description,
    allowed: applyChange(before.allowed, changes.allowed) ?? [],
    denied: applyChange(before.denied, changes.denied) ?? [],
    creators: applyChange(before.creators, changes.creators) ?? [],
    invitations: changes.invitations ?? before.invitations,
    fileUpload: changes.fileUpload ?? before.fileUpload,
    chatHistory: changes.chatHistory ?? before.chatHistory,
    editing: changes.editing ?? before.editing,
  };
  await checkCategoryLists(ctx, model, after, before);
  await nameTaken(ctx.stores.chat.putCategory(after, before.name));
  const renamed = newName !== before.name;
  await publish(model, { kind: 'category', service: svc.domain, names: renamed ? [before.name, newName] : [newName], renamed });
  return { before, after };
}

export async function deleteCategory(ctx: ChatOpContext, actor: ChatActor, service: string | null, name: string): Promise<void> {
  requireAdmin(ctx, actor, 'delete categories');
  const model = await modelOf(ctx);
  const svc = svcModel(model, serviceOf(ctx, service));
  const cat = category(svc, name);
  const r = await ctx.stores.chat.deleteCategory(svc.domain, cat.name);
  if (r === false) throw new ChatOpError(`no category ${name} in ${svc.domain}`, 'item-not-found');
  if (r === 'not-empty') throw new ChatOpError(`category ${cat.name} still has rooms: move or delete them first`, 'conflict');
  await publish(model, { kind: 'category', service: svc.domain, names: [cat.name] });
}

/** Admins see every category; others the categories where they may create rooms. */
export async function listCategories(ctx: ChatOpContext, actor: ChatActor, service: string | null): Promise<CategoryRecord[]> {
  const model = await modelOf(ctx);
  const svc = svcModel(model, serviceOf(ctx, service));
  const s = await subjectOf(model, actor);
  return [...svc.categories.values()].filter((c) => s.admin || canCreate(s, c)).sort((a, b) => a.name.localeCompare(b.name));
}

// --- rooms ------------------------------------------------------------------------------------------

export interface RoomInput extends RoomChanges { category: string }

function noRoom(svc: ServiceModel, room: string): ChatOpError {
  return new ChatOpError(`no room ${room}@${svc.domain} in any category`, 'item-not-found');
}

function roomOf(svc: ServiceModel, room: string): { rec: ChatRoomRecord; cat: CategoryRecord } {
  const rec = svc.room(room);
  if (!rec) throw noRoom(svc, room);
  const cat = svc.categoryOf(rec);
  if (!cat) throw new ChatOpError(`room ${room}@${svc.domain} names a missing category ${rec.category}`, 'item-not-found');
  return { rec, cat };
}

function addinName(svc: ServiceModel, name: string | null | undefined, current: string | null): string | null {
  if (name === undefined) return current;
  if (name === null || name.trim() === '') return null;
  const a = svc.addin(name.trim());
  if (!a) throw new ChatOpError(`no add-in ${name} in ${svc.domain}`, 'item-not-found');
  return a.name;
}

/** Checks a room record's lists against its category: provisioned, in scope, presenters members of an auditorium. */
async function checkRoomLists(ctx: ChatOpContext, model: ChatModel, rec: ChatRoomRecord, cat: CategoryRecord, before: ChatRoomRecord | null, exempt: readonly string[] = []): Promise<void> {
  const fresh = (after: readonly string[] | null, prev: readonly string[] | null | undefined) =>
    added(before ? prev ?? [] : [], after).filter((p) => !exempt.includes(p));
  const newMembers = fresh(rec.members, before?.members);
  const newManagers = fresh(rec.managers, before?.managers);
  const newPresenters = fresh(rec.presenters, before?.presenters);
  await requireProvisioned(ctx.stores, [...newMembers, ...newManagers, ...newPresenters]);
  await requireInScope(ctx, model, cat, newMembers, 'member');
  await requireInScope(ctx, model, cat, newManagers, 'manager');
  if (rec.presenters.length > 0 && rec.type !== 'auditorium') {
    throw new ChatOpError('only auditorium rooms have presenters', 'not-acceptable');
  }
  await requireInScope(ctx, model, cat, newPresenters, 'presenter');
  // Presenters must be members: all of them when the members changed, else the new ones.
  if (rec.members !== null) {
    const membersChanged = !before || (before.members ?? []).join() !== rec.members.join() || before.members === null;
    for (const p of membersChanged ? rec.presenters : newPresenters) {
      const why = await outside(ctx, model, p, rec.members, []);
      if (why) throw new ChatOpError(`presenter ${p} is not a member of ${rec.room}@${rec.service} (${why})`, 'not-acceptable');
    }
  }
}

/** Users who became members by a change, expanded from the added principals (at most MAX_INVITATIONS). */
async function newMembersToInvite(ctx: ChatOpContext, model: ChatModel, before: ChatRoomRecord | null, beforeCat: CategoryRecord | null, after: ChatRoomRecord, cat: CategoryRecord, inviter: string): Promise<string[]> {
  if (!cat.invitations || after.invitations !== 'inherit' || after.disabled) return [];
  // From inheriting to a list, nobody gains access (everyone in scope was a member): isMember(before) filters them.
  const fresh = added(before?.members ?? null, after.members);
  const users = new Set<string>();
  for (const key of fresh) {
    if (users.size >= MAX_INVITATIONS) break;
    for (const u of await ctx.stores.directory.expandUsers(key, ctx.domain, MAX_INVITATIONS - users.size)) users.add(u);
  }
  users.delete(inviter);
  await model.ensureSubjects(users);
  const out: string[] = [];
  for (const u of users) {
    const s = await model.subjectOf(u);
    if (!isMember(s, after, cat)) continue;
    if (before && beforeCat && isMember(s, before, beforeCat)) continue;
    out.push(u);
  }
  return out;
}

function inviterOf(actor: ChatActor): string {
  return actor.kind === 'account' ? actor.bare : '';
}

/** Stores the invitations (in the caller's transaction) and returns them, to be sent after commit. */
async function storeInvitations(stores: DataStores, users: readonly string[], rec: ChatRoomRecord, inviter: string): Promise<InvitationRecord[]> {
  if (users.length === 0) return [];
  return stores.chat.addInvitations(users.map((user) => ({ user, service: rec.service, room: rec.room, inviter })));
}

/** XEP-0249 direct invitations from the room; offline users get them from offline storage. */
function sendInvitations(ctx: ChatOpContext, invitations: readonly InvitationRecord[], rec: ChatRoomRecord): void {
  if (!ctx.route) return;
  const room = `${rec.room}@${rec.service}`;
  for (const inv of invitations) {
    const msg = new Element('message', { xmlns: NS.client, from: room, to: inv.user, id: `invite-${inv.id}` });
    msg.c('x', { xmlns: NS.conference, jid: room, reason: `You are now a member of ${rec.name}` });
    ctx.route(msg);
  }
}

/**
 * Creates a room in a category: admins anywhere, others where they may create (canCreate). An
 * account that creates becomes a manager and, for closed and secret rooms, a member.
 */
export async function createRoom(ctx: ChatOpContext, actor: ChatActor, service: string | null, localpart: string, input: RoomInput): Promise<ChatRoomRecord> {
  const ref = roomRef(ctx, localpart, service);
  const model = await modelOf(ctx);
  const svc = svcModel(model, ref.service);
  const s = await subjectOf(model, actor);
  const cat = category(svc, input.category);
  if (!canCreate(s, cat)) throw new ChatOpError(`you may not create rooms in category ${cat.name}`, 'forbidden');
  if (svc.room(ref.room)) throw new ChatOpError(`room ${ref.room}@${ref.service} already exists`, 'conflict');
  const name = checkText('the room name', input.name ?? ref.room, { required: true });
  const privacy = input.privacy ?? 'closed';
  const type = input.type ?? 'normal';
  let members = applyChange(null, input.members);
  let managers = applyChange([], input.managers) ?? [];
  const exempt: string[] = [];
  if (actor.kind === 'account') {
    // The creator manages the room (an admin only when their own scope allows it: they manage every room anyway).
    const creatorFits = !s.admin || inScope(s, cat);
    if (creatorFits) {
      if (!managers.includes(actor.bare)) managers = [...managers, actor.bare];
      if (privacy !== 'open' && members !== null && !members.includes(actor.bare)) members = [...members, actor.bare];
      if (privacy !== 'open' && members === null && input.members === undefined) members = [actor.bare];
      if (!s.admin) exempt.push(actor.bare);
    }
  }
  const rec: ChatRoomRecord = {
    service: ref.service, room: ref.room, category: cat.name, name,
    description: checkText('the description', input.description ?? ''),
    privacy, type,
    invitations: input.invitations ?? 'inherit',
    disabled: input.disabled ?? false,
    addin: addinName(svc, input.addin, null),
    members, managers,
    presenters: applyChange([], input.presenters) ?? [],
    createdAt: new Date(),
  };
  if (svc.roomByName(name)) throw new ChatOpError(`the name ${name} is already used by a room`, 'conflict');
  if (svc.category(name)) throw new ChatOpError(`the name ${name} is already used by a category`, 'conflict');
  await checkRoomLists(ctx, model, rec, cat, null, exempt);
  const invitees = await newMembersToInvite(ctx, model, null, null, rec, cat, inviterOf(actor));
  const invitations = await nameTaken(inTransaction(ctx.stores, async (tx) => {
    await tx.chat.putRoom(rec);
    return storeInvitations(tx, invitees, rec, inviterOf(actor));
  }));
  await ctx.ensureMucRoom?.(rec.service, rec.room, rec.name, rec.description);
  await publish(model, { kind: 'room', service: rec.service, names: [rec.room] });
  sendInvitations(ctx, invitations, rec);
  return rec;
}

/**
 * Changes a room. Managers change every property but the category (unless they may create in the
 * target) and may disable but not enable; admins anything. Moving to another category drops every
 * listed principal the new scope excludes; making the room normal drops its presenters.
 */
export async function updateRoom(ctx: ChatOpContext, actor: ChatActor, service: string | null, localpart: string, changes: RoomChanges): Promise<RoomUpdate> {
  const ref = roomRef(ctx, localpart, service);
  const model = await modelOf(ctx);
  const svc = svcModel(model, ref.service);
  const s = await subjectOf(model, actor);
  const { rec: before, cat: beforeCat } = managedRoom(svc, s, ref.room);
  let cat = beforeCat;
  if (changes.category !== undefined && changes.category.trim().toLowerCase() !== beforeCat.name.toLowerCase()) {
    cat = category(svc, changes.category);
    if (!canCreate(s, cat)) throw new ChatOpError(`you may not move rooms into category ${cat.name}`, 'forbidden');
  }
  if (changes.disabled === false && before.disabled && !s.admin) {
    throw new ChatOpError('only administrators enable a disabled room', 'forbidden');
  }
  const name = changes.name !== undefined ? checkText('the room name', changes.name, { required: true }) : before.name;
  if (name.toLowerCase() !== before.name.toLowerCase()) {
    if (svc.roomByName(name)) throw new ChatOpError(`the name ${name} is already used by a room`, 'conflict');
    if (svc.category(name)) throw new ChatOpError(`the name ${name} is already used by a category`, 'conflict');
  }
  const after: ChatRoomRecord = {
    ...before,
    category: cat.name,
    name,
    description: changes.description !== undefined ? checkText('the description', changes.description) : before.description,
    privacy: changes.privacy ?? before.privacy,
    type: changes.type ?? before.type,
    invitations: changes.invitations ?? before.invitations,
    disabled: changes.disabled ?? before.disabled,
    addin: addinName(svc, changes.addin, before.addin),
    members: before.members === null && isEdit(changes.members) ? null : applyChange(before.members, changes.members),
    managers: applyChange(before.managers, changes.managers) ?? [],
    presenters: applyChange(before.presenters, changes.presenters) ?? [],
  };
  if (before.members === null && isEdit(changes.members)) {
    // A room without a member list counts everyone in its category's scope as a member: adding someone
    // in scope changes nothing, and nobody already in is locked out by an add.
    if ((changes.members!.remove ?? []).length > 0) {
      throw new ChatOpError(`${ref.room}@${ref.service} has no member list: everyone in category ${beforeCat.name}'s scope is a member; give the whole list (--members a,b) to leave someone out`, 'not-acceptable');
    }
    const adds = (changes.members!.add ?? []).map(canonical);
    await requireProvisioned(ctx.stores, adds);
    await requireInScope(ctx, model, cat, adds, 'member');
  }
  const dropped: string[] = [];
  if (after.type === 'normal' && after.presenters.length > 0 && changes.type === 'normal' && !changes.presenters) {
    for (const p of after.presenters) dropped.push(`presenters: ${p} (no longer an auditorium)`);
    after.presenters = [];
  }
  if (cat !== beforeCat) {
    // A move: what the new scope excludes goes from every list.
    const purge = async (list: 'members' | 'managers' | 'presenters') => {
      const entries = after[list];
      if (!entries) return;
      const out = new Set(await excluded(ctx, model, cat, entries));
      if (out.size === 0) return;
      for (const p of out) dropped.push(`${list}: ${p}`);
      (after[list] as string[]) = entries.filter((p) => !out.has(p));
    };
    await purge('members');
    await purge('managers');
    await purge('presenters');
  }
  // Only entries not listed before are checked: those kept by a move passed the new scope above.
  await checkRoomLists(ctx, model, after, cat, before);
  const invitees = await newMembersToInvite(ctx, model, before, beforeCat, after, cat, inviterOf(actor));
  const invitations = await nameTaken(inTransaction(ctx.stores, async (tx) => {
    await tx.chat.putRoom(after);
    return storeInvitations(tx, invitees, after, inviterOf(actor));
  }));
  await publish(model, { kind: 'room', service: after.service, names: [after.room] });
  sendInvitations(ctx, invitations, after);
  return { before, after, dropped, invited: invitations.length };
}

export function disableRoom(ctx: ChatOpContext, actor: ChatActor, service: string | null, localpart: string): Promise<RoomUpdate> {
  return updateRoom(ctx, actor, service, localpart, { disabled: true });
}

export function enableRoom(ctx: ChatOpContext, actor: ChatActor, service: string | null, localpart: string): Promise<RoomUpdate> {
  return updateRoom(ctx, actor, service, localpart, { disabled: false });
}

/**
 * A room the subject manages. Who may not manage it is refused; a secret room they may not see either
 * is answered as a room that does not exist, so no request tells them it does.
 */
export function managedRoom(svc: ServiceModel, s: Subject, room: string): { rec: ChatRoomRecord; cat: CategoryRecord } {
  const found = roomOf(svc, room);
  if (canManage(s, found.rec, found.cat)) return found;
  if (!existsFor(s, found.rec, found.cat)) throw noRoom(svc, room);
  throw new ChatOpError(`you do not manage ${room}@${svc.domain}`, 'forbidden');
}

/** Deletes a room's settings and (when a server runs) destroys the live room: admins only. */
export async function deleteRoom(ctx: ChatOpContext, actor: ChatActor, service: string | null, localpart: string, reason?: string): Promise<void> {
  const ref = roomRef(ctx, localpart, service);
  requireAdmin(ctx, actor, 'delete rooms');
  const model = await modelOf(ctx);
  const svc = svcModel(model, ref.service);
  roomOf(svc, ref.room);
  await ctx.destroyMucRoom?.(ref.service, ref.room, reason ?? 'The room was deleted by an administrator');
  if (!ctx.destroyMucRoom) await ctx.stores.rooms.delete(ref.service, ref.room);
  await ctx.stores.chat.deleteRoom(ref.service, ref.room);
  await publish(model, { kind: 'room', service: ref.service, names: [ref.room] });
}

export interface RoomFilter {
  category?: string;
  /** A user (bare JID) who is a member by the rules. */
  member?: string;
  /** A user who manages the room by the rules. */
  manager?: string;
  disabled?: boolean;
  privacy?: RoomPrivacy;
  type?: RoomKind;
  addin?: string;
  /** Case-insensitive substring of the name or description; * wildcards allowed. */
  filter?: string;
  invitations?: 'inherit' | 'off';
  /** Only rooms whose archive holds more than this many bytes. */
  contentLargerThan?: number;
  limit?: number;
}

/** Rooms of a service: every room for admins, the rooms they manage for others; filtered. */
export async function listRooms(ctx: ChatOpContext, actor: ChatActor, service: string | null, f: RoomFilter = {}): Promise<ChatRoomRecord[]> {
  const model = await modelOf(ctx);
  const svc = svcModel(model, serviceOf(ctx, service));
  const s = await subjectOf(model, actor);
  const cat = f.category !== undefined ? category(svc, f.category) : undefined;
  const member = f.member ? await model.subjectOf(canonical(f.member)) : undefined;
  const manager = f.manager ? await model.subjectOf(canonical(f.manager)) : undefined;
  const pattern = f.filter ? new RegExp(f.filter.toLowerCase().split('*').map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')) : undefined;
  const sorted = [...svc.rooms.values()].sort((a, b) => a.room.localeCompare(b.room));
  // Sizes are kept per archive by triggers: one read for every room of the service.
  const sizes = f.contentLargerThan !== undefined ? await ctx.stores.archive.sizes(sorted.map((r) => `${r.room}@${r.service}`)) : undefined;
  const out: ChatRoomRecord[] = [];
  for (const r of sorted) {
    const c = svc.categoryOf(r);
    if (!c) continue;
    if (!canManage(s, r, c)) continue;
    if (cat && c !== cat) continue;
    if (f.disabled !== undefined && r.disabled !== f.disabled) continue;
    if (f.privacy && r.privacy !== f.privacy) continue;
    if (f.type && r.type !== f.type) continue;
    if (f.addin !== undefined && (r.addin ?? '').toLowerCase() !== f.addin.toLowerCase()) continue;
    if (member && !isMember(member, r, c)) continue;
    if (manager && !(covers(manager.principals, r.managers) && !isDenied(manager, c))) continue;
    if (pattern && !pattern.test(r.name.toLowerCase()) && !pattern.test(r.description.toLowerCase())) continue;
    if (f.invitations && r.invitations !== f.invitations) continue;
    if (sizes && !((sizes.get(`${r.room}@${r.service}`)?.bytes ?? 0) > f.contentLargerThan!)) continue;
    out.push(r);
    if (f.limit !== undefined && out.length >= f.limit) break;
  }
  return out;
}

/** One room's settings, for whoever manages it. */
export async function showRoom(ctx: ChatOpContext, actor: ChatActor, service: string | null, localpart: string): Promise<ChatRoomRecord> {
  const ref = roomRef(ctx, localpart, service);
  const model = await modelOf(ctx);
  const svc = svcModel(model, ref.service);
  const s = await subjectOf(model, actor);
  return managedRoom(svc, s, ref.room).rec;
}
