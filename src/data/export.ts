// Export: the stores, page by page, into a gzipped JSON Lines file (src/data/format.ts). The file is
// written under a temporary name beside the target and renamed when complete, so a file with the
// target's name is always whole.
import { createWriteStream } from 'node:fs';
import { rename, stat, unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { DataStores } from '../../storage/types.js';
import type { Progress } from '../admin/command.js';
import { createPubsubStore } from '../../storage/sql-pubsub.js';
import { createPubsubTransfer, type TransferPubsubNode } from '../../storage/sql-transfer.js';
import { FORMAT, VERSION, pubsubLevel, scramOut, type DataRecord, type Header, type Kind, type Level } from './format.js';

const PAGE = 1000;

export interface ExportOptions {
  file: string;
  level: Level;
  /** Category names (any case): categories, rooms and room content only of these. Empty: all. */
  scope: string[];
  /** Archived messages stamped on or after this time only. */
  since: Date | null;
  domain: string;
  /** The MUC services whose categories and rooms are exported. */
  services: readonly string[];
  progress?: (p: Progress) => void;
}

export interface ExportResult {
  file: string;
  level: Level;
  scope: string[];
  since: string | null;
  counts: Partial<Record<Kind, number>>;
  bytes: number;
}

export async function exportData(stores: DataStores, opts: ExportOptions): Promise<ExportResult> {
  const counts: Partial<Record<Kind, number>> = {};
  const tmp = `${opts.file}.partial-${process.pid}`;
  try {
    await pipeline(Readable.from(lines(stores, opts, counts)), createGzip(), createWriteStream(tmp, { mode: 0o600 }));
    await rename(tmp, opts.file);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  return {
    file: opts.file, level: opts.level, scope: opts.scope, since: opts.since?.toISOString() ?? null,
    counts, bytes: (await stat(opts.file)).size,
  };
}

/** The file's text, a page of lines at a time. */
async function* lines(stores: DataStores, opts: ExportOptions, counts: Partial<Record<Kind, number>>): AsyncGenerator<string> {
  const header: Header = {
    format: FORMAT, version: VERSION, created: new Date().toISOString(), domain: opts.domain,
    level: opts.level, scope: opts.scope, since: opts.since?.toISOString() ?? null,
  };
  yield JSON.stringify(header) + '\n';
  let done = 0;
  let phase = '';
  const emit = (recs: DataRecord[]): string => {
    for (const r of recs) counts[r.type] = (counts[r.type] ?? 0) + 1;
    done += recs.length;
    if (recs.length) opts.progress?.({ phase, done, unit: 'records' });
    return recs.map((r) => JSON.stringify(r) + '\n').join('');
  };
  const wants = (l: Exclude<Level, 'all'>) => opts.level === 'all' || opts.level === l;
  const inScope = new Set(opts.scope.map((s) => s.toLowerCase()));
  const scoped = inScope.size > 0;
  const categoryIn = (name: string) => !scoped || inScope.has(name.toLowerCase());

  if (wants('users')) {
    phase = 'users';
    let after: string | null = null;
    for (;;) {
      const users = await stores.transfer.users(after, PAGE);
      if (users.length === 0) break;
      after = users[users.length - 1]!.username;
      const recs: DataRecord[] = [];
      for (const u of users) {
        recs.push({ type: 'user', username: u.username, disabled: u.disabled, createdAt: u.createdAt.toISOString(), sha1: scramOut(u.credentials.sha1), sha256: scramOut(u.credentials.sha256) });
        const [roster, pending, data, offline] = await Promise.all([
          stores.roster.get(u.username), stores.roster.listPendingIn(u.username),
          stores.transfer.userData(u.username), stores.transfer.offline(u.username),
        ]);
        for (const item of roster.items) recs.push({ type: 'roster-item', username: u.username, ...item });
        for (const p of pending) recs.push({ type: 'roster-pending', username: u.username, ...p });
        for (const d of data) recs.push({ type: 'user-data', username: u.username, ...d });
        for (const m of offline) recs.push({ type: 'offline', username: u.username, stanza: m.stanza, stamp: m.stamp.toISOString() });
      }
      yield emit(recs);
    }
  }

  if (wants('directory')) {
    phase = 'directory';
    const groups: DataRecord[] = [];
    for (const g of await stores.directory.listGroups()) {
      const full = await stores.directory.getGroup(g.name);
      if (full) groups.push({ type: 'group', name: full.name, description: full.description, members: full.members });
    }
    yield emit(groups);
    yield emit((await stores.directory.listOrgUnits()).map((o): DataRecord => ({ type: 'org-unit', path: o.path, description: o.description })));
    yield emit((await stores.transfer.userOrgUnits()).map((u): DataRecord => ({ type: 'user-org-unit', user: u.user, path: u.path })));
  }

  if (wants('categories')) {
    phase = 'categories';
    for (const service of opts.services) {
      yield emit((await stores.chat.addins(service)).map((a): DataRecord => ({ type: 'addin', service, name: a.name, url: a.url })));
      yield emit([{ type: 'settings', service, ...(await stores.chat.settings(service)) }]);
    }
    yield emit((await stores.chat.policies()).map((p): DataRecord => ({ type: 'policy', ...p })));
    for (const service of opts.services) {
      yield emit((await stores.chat.categories(service)).filter((c) => categoryIn(c.name)).map((c): DataRecord => ({ type: 'category', ...c })));
    }
  }

  // Room JIDs of the rooms in scope (their archives are the content in scope).
  const scopedRooms: string[] = [];
  if (wants('rooms') || (wants('content') && scoped)) {
    phase = 'rooms';
    for (const service of opts.services) {
      const chatRooms = (await stores.chat.rooms(service)).filter((r) => categoryIn(r.category));
      const governed = new Set(chatRooms.map((r) => r.room));
      for (const r of chatRooms) scopedRooms.push(`${r.room}@${service}`);
      if (!wants('rooms')) continue;
      yield emit(chatRooms.map(({ type: roomType, ...r }): DataRecord => ({ type: 'chat-room', ...r, roomType, createdAt: r.createdAt.toISOString() })));
      let after: string | undefined;
      for (;;) {
        const page = await stores.rooms.list(service, { limit: PAGE, ...(after !== undefined ? { after } : {}) });
        if (page.length === 0) break;
        after = page[page.length - 1]!.name;
        yield emit(page.filter((r) => !scoped || governed.has(r.name)).map((r): DataRecord => ({
          type: 'muc-room', service: r.service, name: r.name, config: r.config, affiliations: r.affiliations,
          subject: r.subject ? { text: r.subject.text, nick: r.subject.nick, stamp: r.subject.stamp.toISOString() } : null,
          createdAt: r.createdAt.toISOString(), persistent: r.persistent,
        })));
      }
    }
  }

  if (wants('users')) {
    phase = 'invitations';
    let afterId = 0;
    for (;;) {
      const page = await stores.transfer.invitations(afterId, PAGE);
      if (page.length === 0) break;
      afterId = page[page.length - 1]!.id;
      yield emit(page.map((i): DataRecord => ({ type: 'invitation', user: i.user, service: i.service, room: i.room, inviter: i.inviter, at: i.at.toISOString() })));
    }
  }

  // Pubsub: PEP nodes with the users, the pubsub service's with level pubsub; each node followed by
  // its affiliations, subscriptions and items (in publish order).
  if (wants('users') || wants('pubsub')) {
    phase = 'pubsub';
    const pubsub = createPubsubStore(stores.db);
    const transfer = createPubsubTransfer(stores.db);
    let after: { service: string; node: string } | null = null;
    for (;;) {
      const nodes = await transfer.nodes(after, PAGE);
      if (nodes.length === 0) break;
      const last: TransferPubsubNode = nodes[nodes.length - 1]!;
      after = { service: last.service, node: last.node };
      const recs: DataRecord[] = [];
      for (const n of nodes) {
        if (!wants(pubsubLevel(n.service))) continue;
        const { service, node } = n;
        recs.push({ type: 'pubsub-node', service, node, owner: n.owner, config: n.config, createdAt: n.createdAt.toISOString() });
        const [affiliations, subscriptions, items] = await Promise.all([
          pubsub.affiliations(service, node), pubsub.subscriptions(service, node), transfer.items(service, node),
        ]);
        for (const a of affiliations) recs.push({ type: 'pubsub-affiliation', service, node, jid: a.jid, affiliation: a.affiliation });
        for (const s of subscriptions) recs.push({ type: 'pubsub-subscription', service, node, jid: s.jid, state: s.state });
        for (const i of items) recs.push({ type: 'pubsub-item', service, node, id: i.id, publisher: i.publisher, payload: i.payload, stamp: i.stamp.toISOString() });
      }
      yield emit(recs);
    }
  }

  // Messages: personal archives with the users, room archives with the content (of the rooms in scope).
  const since = opts.since ?? undefined;
  const scans: { archives?: string[]; domains?: string[] }[] = [];
  if (opts.level === 'all' && !scoped) scans.push({});
  else {
    if (wants('users')) scans.push({ domains: [opts.domain] });
    if (wants('content')) scans.push(scoped ? { archives: scopedRooms } : { domains: [...opts.services] });
  }
  phase = 'messages';
  for (const scan of scans) {
    if (scan.archives?.length === 0) continue;
    let afterId = 0;
    for (;;) {
      const page = await stores.transfer.messages({ afterId, limit: PAGE, ...(since ? { since } : {}), ...scan });
      if (page.length === 0) break;
      afterId = page[page.length - 1]!.id;
      yield emit(page.map((m): DataRecord => ({
        type: 'message', archive: m.archive, stanzaId: m.stanzaId, stamp: m.stamp.toISOString(), fromJid: m.fromJid,
        realJid: m.realJid, body: m.body, stanza: m.stanza, retracted: m.retracted,
      })));
    }
  }
  yield JSON.stringify({ type: 'end', counts }) + '\n';
  opts.progress?.({ phase: 'done', done, total: done, unit: 'records' });
}
