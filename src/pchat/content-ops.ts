// Content administration (the original's Clear-/Remove-CsPersistentChatMessage and
// Get-CsPersistentChatEligiblePrincipal): clearing a room's old archive, removing or replacing the
// messages a filter matches, and listing who may enter a category's or a room's rooms. Clear and
// remove work on any room with an archive, governed or plain; each rewrite is published as a 'content'
// change so the node holding the room re-reads its join history and tells its occupants
// (src/muc/features/archive-admin.ts). Eligibility asks the access rules (access.ts) of each user the
// list's principals expand to: one statement per principal to expand, one per chunk of users to read.
import { tryParseJid } from '../../protocol/jid.js';
import { formatDateTime, parseDateTime } from '../../protocol/datetime.js';
import { buildAdminArchived } from '../../protocol/moderation.js';
import { parseStanzaString } from '../../protocol/xml-stream.js';
import type { ArchiveMatch, ArchiveQuery, ArchiveRewrite } from '../../storage/types.js';
import { canJoin, inScope, isPresenter, type Subject } from './access.js';
import {
  ChatOpError, category, managedRoom, modelOf, publish, requireAdmin, roomRef, serviceOf, subjectOf, svcModel,
  type ChatActor, type ChatOpContext,
} from './operations.js';

/** Rows one clear statement deletes: short enough not to hold the archive long. */
export const CLEAR_BATCH = 5_000;
/** Messages read and rewritten per statement (and per published change) by remove-messages. */
export const REWRITE_BATCH = 500;
/** Users whose directory entries one statement reads while deciding eligibility. */
const ELIGIBLE_CHUNK = 5_000;
/** Most users one principal expands to. */
const MAX_EXPANSION = 1_000_000;

export const DEFAULT_REPLACEMENT = 'This message was replaced by the Persistent Chat administrator.';
const REMOVED_REASON = 'Removed by the administrator';
const REPLACED_REASON = 'Replaced by the administrator';

/** Progress of a long run (the admin layer's Progress: the CLI draws it). */
type Report = ((p: { phase: string; done: number; total?: number; unit?: string }) => void) | undefined;

/**
 * An XEP-0082 date or date-time. A bare date is the end of that day (UTC) for an upper bound (on or
 * before that day) and its start for a lower bound.
 */
export function parseAdminDate(text: string, bound: 'start' | 'end', what: string): Date {
  const t = text.trim();
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(t);
  const d = day
    ? parseDateTime(`${t}T${bound === 'end' ? '23:59:59.999' : '00:00:00'}Z`)
    : parseDateTime(t);
  if (!d) throw new ChatOpError(`${what}: ${text} is not an XEP-0082 date (2026-03-31) or date-time (2026-03-31T12:00:00Z)`);
  return d;
}

/** The archive of a room an admin names: a governed room, or a plain XEP-0045 room this server stores. */
async function roomArchive(ctx: ChatOpContext, ref: string, service: string | null): Promise<{ service: string; room: string; jid: string }> {
  const r = roomRef(ctx, ref, service);
  const model = await modelOf(ctx);
  const governed = model.forService(r.service)?.room(r.room);
  if (!governed && !(await ctx.stores.rooms.get(r.service, r.room))) {
    throw new ChatOpError(`no room ${r.room}@${r.service}`, 'item-not-found');
  }
  return { ...r, jid: `${r.room}@${r.service}` };
}

/** before: the bound as an XEP-0082 date-time (results travel as JSON through the admin socket). */
export interface ClearResult { room: string; before: string; removed: number }

/**
 * Deletes a room's archived messages stamped on or before `before`, oldest first, CLEAR_BATCH rows a
 * statement; live rooms re-read their join history. Admins only.
 */
export async function clearRoom(ctx: ChatOpContext, actor: ChatActor, service: string | null, ref: string, before: Date, progress?: Report): Promise<ClearResult> {
  requireAdmin(ctx, actor, 'clear room content');
  const r = await roomArchive(ctx, ref, service);
  const archive = ctx.stores.archive;
  // Exact up to the store's count bound; beyond it the progress is a counter.
  const total = (await archive.query(r.jid, { end: before, limit: 0 })).count;
  let removed = 0;
  progress?.({ phase: 'clear', done: 0, ...(total !== undefined ? { total } : {}), unit: 'messages' });
  for (;;) {
    const n = await archive.deleteBefore(r.jid, before, CLEAR_BATCH);
    removed += n;
    if (n > 0) progress?.({ phase: 'clear', done: removed, ...(total !== undefined ? { total: Math.max(total, removed) } : {}), unit: 'messages' });
    if (n < CLEAR_BATCH) break;
  }
  if (removed > 0) {
    await publish(await modelOf(ctx), { kind: 'content', service: r.service, names: [r.room], content: { reason: 'Cleared by the administrator', cleared: true } });
  }
  return { room: r.jid, before: formatDateTime(before), removed };
}

/** Which messages remove-messages acts on; at least one filter. */
export interface ContentFilter {
  /** Real bare JIDs of the authors. */
  authors?: string[];
  start?: Date;
  end?: Date;
  match?: ArchiveMatch;
}

export interface RemoveOptions {
  /** The text the messages become; absent: they are removed (a tombstone stays). */
  replacement?: string;
  /** Only count. */
  dryRun?: boolean;
}

export interface RemoveResult { room: string; matched: number; changed: number; mode: 'remove' | 'replace'; dryRun: boolean }

/**
 * Removes (XEP-0425 tombstone) or replaces (the body becomes the replacement, marked) every message
 * of a room's archive the filter matches; occupants of the live room get each as an XEP-0425 notice
 * from the room. Subject changes and messages already removed are left alone. Admins only.
 */
export async function removeMessages(
  ctx: ChatOpContext, actor: ChatActor, service: string | null, ref: string, f: ContentFilter, opts: RemoveOptions = {}, progress?: Report,
): Promise<RemoveResult> {
  requireAdmin(ctx, actor, 'remove messages');
  const authors = (f.authors ?? []).map((a) => {
    const j = tryParseJid(a.trim());
    if (!j || !j.local || j.resource) throw new ChatOpError(`--author takes a user's bare JID (user@domain), not ${a}`);
    return j.bareString();
  });
  if (f.match && f.match.text.trim() === '') throw new ChatOpError('--filter is empty');
  if (f.start && f.end && f.start > f.end) throw new ChatOpError('--start is after --end');
  if (authors.length === 0 && !f.start && !f.end && !f.match) {
    throw new ChatOpError('give at least one filter (--author, --start, --end, --filter); to delete a whole history use room clear');
  }
  const r = await roomArchive(ctx, ref, service);
  const mode = opts.replacement !== undefined ? 'replace' : 'remove';
  const replacement = opts.replacement?.trim() === '' ? undefined : opts.replacement;
  if (mode === 'replace' && replacement === undefined) throw new ChatOpError('--replace: the replacement text is empty');
  const q: Omit<ArchiveQuery, 'limit'> = {
    ...(f.start ? { start: f.start } : {}), ...(f.end ? { end: f.end } : {}), ...(f.match ? { match: f.match } : {}),
    ...(authors.length > 0 ? { authors: { realJids: authors } } : {}),
  };
  const archive = ctx.stores.archive;
  const model = opts.dryRun ? null : await modelOf(ctx);
  const total = (await archive.query(r.jid, { ...q, limit: 0 })).count;
  let matched = 0;
  let changed = 0;
  let after: string | undefined;
  const stamp = new Date();
  for (;;) {
    // Paging by stanza id: rows behind the cursor may change without moving it.
    const page = await archive.query(r.jid, { ...q, limit: REWRITE_BATCH, ...(after ? { after } : {}) });
    if (page.entries.length === 0) break;
    after = page.entries[page.entries.length - 1]!.stanzaId;
    const targets = page.entries.filter((e) => !e.retracted && e.body !== null);
    matched += targets.length;
    if (!opts.dryRun && targets.length > 0) {
      const reason = mode === 'replace' ? REPLACED_REASON : REMOVED_REASON;
      const rewrites: ArchiveRewrite[] = targets.map((e) => {
        const m = { room: r.jid, id: e.stanzaId, reason, ...(replacement !== undefined ? { replacement } : {}) };
        return {
          stanzaId: e.stanzaId, stanza: buildAdminArchived(parseStanzaString(e.stanza), m, stamp).toString(),
          body: replacement ?? null, retracted: mode === 'remove',
        };
      });
      const found = new Set(await archive.rewrite(r.jid, rewrites));
      changed += found.size;
      if (found.size > 0) {
        await publish(model!, {
          kind: 'content', service: r.service, names: [r.room],
          content: { reason, notices: [...found].map((id) => ({ id, ...(replacement !== undefined ? { replacement } : {}) })) },
        });
      }
    }
    progress?.({ phase: opts.dryRun ? 'count' : mode, done: matched, ...(total !== undefined ? { total: Math.max(total, matched) } : {}), unit: 'messages' });
    if (page.complete) break;
  }
  return { room: r.jid, matched, changed, mode, dryRun: opts.dryRun === true };
}

// --- eligible principals -----------------------------------------------------------------------------

export interface EligibleQuery {
  category?: string;
  room?: string;
  /** The room's presenters (auditorium rooms). */
  presenters?: boolean;
  /** A wildcard pattern (*) on the user's JID, any case. */
  filter?: string;
  limit?: number;
}

export interface EligibleUser {
  jid: string;
  /** The entries of the list that let the user in (the user itself, a group, an org unit, a domain). */
  via: string[];
}

export interface EligibleResult {
  /** What was asked about: 'category NAME', 'room JID' or 'presenters of JID'. */
  of: string;
  users: EligibleUser[];
  /** More users were eligible than the limit let through. */
  truncated: boolean;
}

function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.toLowerCase().split('*').map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/**
 * The users who may enter a category's rooms (its scope: allowed minus denied), a room (its members,
 * or the scope when it is open or inherits it; minus denied) or speak in an auditorium (presenters),
 * each with the list entries that let them in. Groups (nested), org units (and the units below) and
 * domains are expanded into users. A category: admins; a room: admins and its managers.
 */
export async function eligiblePrincipals(ctx: ChatOpContext, actor: ChatActor, service: string | null, qy: EligibleQuery): Promise<EligibleResult> {
  if ((qy.category === undefined) === (qy.room === undefined)) throw new ChatOpError('name exactly one of a category or a room');
  if (qy.presenters && qy.room === undefined) throw new ChatOpError('presenters are a room\'s: name the room');
  const model = await modelOf(ctx);
  let list: readonly string[];
  let rule: (s: Subject) => boolean;
  let of: string;
  if (qy.category !== undefined) {
    requireAdmin(ctx, actor, 'list the principals eligible for a category');
    const svc = svcModel(model, serviceOf(ctx, service));
    const cat = category(svc, qy.category);
    list = cat.allowed;
    rule = (s) => inScope(s, cat);
    of = `category ${cat.name}`;
  } else {
    const ref = roomRef(ctx, qy.room!, service);
    const svc = svcModel(model, ref.service);
    const { rec, cat } = managedRoom(svc, await subjectOf(model, actor), ref.room);
    if (qy.presenters) {
      if (rec.type !== 'auditorium') throw new ChatOpError(`${rec.room}@${rec.service} is no auditorium: it has no presenters`);
      list = rec.presenters;
      rule = (s) => isPresenter(s, rec, cat);
      of = `presenters of ${rec.room}@${rec.service}`;
    } else {
      // Who may join were the room enabled; an open room or one without a list admits the whole scope.
      const room = { ...rec, disabled: false };
      list = rec.privacy === 'open' || rec.members === null ? cat.allowed : rec.members;
      rule = (s) => canJoin(s, room, cat);
      of = `room ${rec.room}@${rec.service}`;
    }
  }
  const candidates = new Set<string>();
  for (const key of list) for (const u of await ctx.stores.directory.expandUsers(key, ctx.domain, MAX_EXPANSION)) candidates.add(u);
  const pattern = qy.filter ? wildcard(qy.filter.trim()) : undefined;
  const sorted = [...candidates].filter((u) => !pattern || pattern.test(u)).sort();
  const limit = qy.limit ?? Infinity;
  const users: EligibleUser[] = [];
  for (let i = 0; i < sorted.length && users.length <= limit; i += ELIGIBLE_CHUNK) {
    const chunk = sorted.slice(i, i + ELIGIBLE_CHUNK);
    // Computed here, not through the model's cache: a listing of 150,000 users must not evict the signed-in ones.
    const entries = await ctx.stores.directory.userEntries(chunk);
    for (const bare of chunk) {
      const principals = model.directory.compute(bare, entries.get(bare));
      // Eligibility is the lists' (policy and administrator rights aside): the rule of the room or scope.
      if (!rule({ bare, principals, admin: false, enabled: true })) continue;
      users.push({ jid: bare, via: list.filter((k) => principals.has(k)) });
      if (users.length > limit) break;
    }
  }
  const truncated = users.length > limit;
  return { of, users: truncated ? users.slice(0, limit) : users, truncated };
}
