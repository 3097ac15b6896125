// Import: a file of the export format (src/data/format.ts) merged into the stores. Two passes over
// the file, both streaming: the first checks every line (shape, order of kinds, references, trailer
// counts) and changes nothing, so a bad file is refused with its line number before any write; the
// second applies record by record (archived messages in batches). Each record is written whole; a
// record already there under the same name is overwritten, an equal one left alone, an archived
// message already there (same archive and stanza id) kept. A dry run does the second pass without
// writing and reports what would change.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import { NameTaken, type DataStores, type TransferMessage } from '../../storage/types.js';
import type { StoredCredentials } from '../../storage/types.js';
import type { Progress } from '../admin/command.js';
import { createPubsubStore, type PubsubAffiliation, type PubsubItem, type PubsubSubscriptionState } from '../../storage/sql-pubsub.js';
import { createPubsubTransfer } from '../../storage/sql-transfer.js';
import { tryParseJid } from '../../protocol/jid.js';
import {
  FormatError, KINDS, kindRank, nodeOwned, parseHeader, parseLine, pubsubLevel, scramIn, sniff, userOwned, type DataRecord, type Header, type Kind,
} from './format.js';

const BATCH = 1000;
/** Archived messages per insert statement. */
const MESSAGE_BATCH = 5000;

export interface KindReport { created: number; overwritten: number; unchanged: number; skipped: number }

export interface ImportResult {
  file: string;
  dryRun: boolean;
  header: Header;
  records: number;
  /** Per kind present in the file. */
  report: Partial<Record<Kind, KindReport>>;
  /** Why records were skipped (the first few). */
  skippedReasons: string[];
  /** What changed in the persistent-chat model, for the live model to reload. */
  changed: { services: string[]; rooms: { service: string; room: string }[]; directory: boolean; policies: boolean };
}

export interface ImportOptions {
  file: string;
  dryRun: boolean;
  /** The MUC services of this server: records of other services are refused. */
  services: readonly string[];
  progress?: (p: Progress) => void;
}

interface Line { text: string; line: number }

/** The file's lines, gunzipped when gzipped; bytes read of the file reported as they go. */
async function* readLines(file: string, onBytes?: (n: number) => void): AsyncGenerator<Line> {
  const kind = await sniff(file);
  if (kind !== 'gzip' && kind !== 'jsonl') throw new FormatError(1, `not a ${kind === 'xml' ? 'perch export (XML: an XEP-0227 file?)' : 'gzip or JSON Lines file'}`);
  const raw = createReadStream(file);
  let bytes = 0;
  raw.on('data', (c: Buffer | string) => { bytes += c.length; onBytes?.(bytes); });
  const input = kind === 'gzip' ? raw.pipe(createGunzip()) : raw;
  // A corrupt gzip stream fails the gunzip, which readline does not forward: forward it.
  const failed = new Promise<never>((_, reject) => {
    input.on('error', (e: Error) => reject(e));
    raw.on('error', (e) => reject(e));
  });
  failed.catch(() => {});
  const rl = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  const it = rl[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await Promise.race([it.next(), failed]).catch((e: Error) => {
        throw new FormatError(line + 1, `unreadable (${e.message})`);
      });
      if (next.done) return;
      line++;
      if (next.value.trim() === '' ) continue;
      yield { text: next.value, line };
    }
  } finally {
    rl.close();
    raw.destroy();
  }
}

/** Pass 1: every line checked; nothing written. Returns the header and the number of records. */
async function check(stores: DataStores, opts: ImportOptions): Promise<{ header: Header; records: number }> {
  const size = (await stat(opts.file)).size;
  let header: Header | null = null;
  let rank = -1;
  let records = 0;
  let ended = false;
  const counts: Partial<Record<Kind, number>> = {};
  const users = new Set<string>();
  const categories = new Set<string>();
  const units = new Set<string>();
  // References to things the file does not hold: they must exist here (checked at the end).
  const needUsers = new Map<string, number>();
  const needCategories = new Map<string, number>();
  const needUnits = new Map<string, number>();
  /** Pubsub nodes the file holds and those it refers to, as "service node". */
  const nodes = new Set<string>();
  const needNodes = new Map<string, number>();
  const services = new Set(opts.services);
  let lastReport = 0;
  for await (const { text, line } of readLines(opts.file, (bytes) => {
    if (bytes - lastReport >= 1 << 20 || bytes === size) { lastReport = bytes; opts.progress?.({ phase: 'checking', done: bytes, total: size, unit: 'bytes' }); }
  })) {
    if (!header) {
      header = parseHeader(text);
      continue;
    }
    if (ended) throw new FormatError(line, 'a line after the trailer');
    const rec = parseLine(text, line);
    if (rec.type === 'end') {
      for (const k of new Set([...Object.keys(rec.counts), ...Object.keys(counts)]) as Set<Kind>) {
        if ((rec.counts[k] ?? 0) !== (counts[k] ?? 0)) throw new FormatError(line, `trailer counts ${rec.counts[k] ?? 0} ${k} records, the file holds ${counts[k] ?? 0}`);
      }
      ended = true;
      continue;
    }
    const r = kindRank(rec.type);
    if (r < rank) throw new FormatError(line, `${rec.type} record after ${KINDS[rank]} records (kinds come in the documented order)`);
    rank = r;
    counts[rec.type] = (counts[rec.type] ?? 0) + 1;
    records++;
    const pubsubKind = rec.type === 'pubsub-node' || nodeOwned(rec.type);
    if ('service' in rec && rec.type !== 'invitation' && !pubsubKind && !services.has(rec.service)) {
      throw new FormatError(line, `${rec.type}: ${rec.service} is not a MUC service of this server`);
    }
    if (rec.type === 'user') users.add(rec.username);
    else if (userOwned(rec.type) && 'username' in rec && !users.has(rec.username) && !needUsers.has(rec.username)) needUsers.set(rec.username, line);
    if (rec.type === 'category') categories.add(`${rec.service} ${rec.name.toLowerCase()}`);
    if (rec.type === 'chat-room') {
      const key = `${rec.service} ${rec.category.toLowerCase()}`;
      if (!categories.has(key) && !needCategories.has(key)) needCategories.set(key, line);
    }
    if (rec.type === 'pubsub-node') {
      // A PEP service is an account's bare JID (the account must be in the file or here), the pubsub service a domain.
      const jid = tryParseJid(rec.service);
      const pep = pubsubLevel(rec.service) === 'users';
      if (!jid || jid.resource || (pep && !jid.local)) throw new FormatError(line, `pubsub-node: service ${rec.service} is neither an account's bare JID nor a domain`);
      if (pep && !users.has(jid.local!) && !needUsers.has(jid.local!)) needUsers.set(jid.local!, line);
      nodes.add(`${rec.service} ${rec.node}`);
    } else if (nodeOwned(rec.type) && 'node' in rec) {
      const key = `${rec.service} ${rec.node}`;
      if (!nodes.has(key) && !needNodes.has(key)) needNodes.set(key, line);
    }
    if (rec.type === 'org-unit') units.add(rec.path);
    if (rec.type === 'user-org-unit' && !units.has(rec.path) && !needUnits.has(rec.path)) needUnits.set(rec.path, line);
  }
  if (!header) throw new FormatError(1, 'empty file');
  if (!ended) throw new FormatError(records + 2, 'the file ends without its trailer line (truncated?)');
  for (const [user, line] of needUsers) {
    if (!(await stores.users.get(user))) throw new FormatError(line, `user ${user} is neither in the file nor on this server`);
  }
  const known = new Map<string, Set<string>>();
  for (const [key, line] of needCategories) {
    const [service, name] = [key.slice(0, key.indexOf(' ')), key.slice(key.indexOf(' ') + 1)];
    let names = known.get(service);
    if (!names) known.set(service, (names = new Set((await stores.chat.categories(service)).map((c) => c.name.toLowerCase()))));
    if (!names.has(name)) throw new FormatError(line, `category ${name} of ${service} is neither in the file nor on this server`);
  }
  if (needNodes.size) {
    const transfer = createPubsubTransfer(stores.db);
    for (const [key, line] of needNodes) {
      const [service, node] = [key.slice(0, key.indexOf(' ')), key.slice(key.indexOf(' ') + 1)];
      if (!(await transfer.node(service, node))) throw new FormatError(line, `pubsub node ${node} of ${service} is neither in the file nor on this server`);
    }
  }
  if (needUnits.size) {
    const paths = new Set((await stores.directory.listOrgUnits()).map((o) => o.path));
    for (const [path, line] of needUnits) if (!paths.has(path)) throw new FormatError(line, `org unit ${path} is neither in the file nor on this server`);
  }
  return { header, records };
}

/** Canonical JSON (sorted keys) to compare a record with what is stored. */
function canon(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (x && typeof x === 'object' && !Array.isArray(x)) return Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    return x;
  });
}
const same = (a: unknown, b: unknown) => canon(a) === canon(b);
const sorted = (xs: readonly string[]) => [...xs].sort();

type Outcome = 'created' | 'overwritten' | 'unchanged' | 'skipped';

export async function importData(stores: DataStores, opts: ImportOptions): Promise<ImportResult> {
  const { header, records } = await check(stores, opts);
  const report: Partial<Record<Kind, KindReport>> = {};
  const count = (k: Kind, o: Outcome, n = 1) => {
    const r = (report[k] ??= { created: 0, overwritten: 0, unchanged: 0, skipped: 0 });
    r[o] += n;
  };
  const skippedReasons: string[] = [];
  const changedServices = new Set<string>();
  const changedRooms: { service: string; room: string }[] = [];
  let directory = false;
  let policies = false;
  const write = !opts.dryRun;
  let done = 0;
  const tick = (n = 1) => {
    const before = done;
    done += n;
    if (Math.floor(done / BATCH) !== Math.floor(before / BATCH) || done === records) {
      opts.progress?.({ phase: opts.dryRun ? 'comparing' : 'importing', done, total: records, unit: 'records' });
    }
  };

  // Small look-up caches for kinds compared against a list.
  let offlineOf: { user: string; have: Set<string> } | null = null;
  let invitationsOf: { user: string; have: Set<string> } | null = null;
  let units: Map<string, string> | null = null;
  let policyList: Map<string, boolean> | null = null;
  /** Per service, stored category names by their lower case (a room names its category as stored). */
  const categoryNames = new Map<string, Map<string, string>>();
  const storedCategory = async (service: string, name: string): Promise<string> => {
    let names = categoryNames.get(service);
    if (!names) categoryNames.set(service, (names = new Map((await stores.chat.categories(service)).map((c) => [c.name.toLowerCase(), c.name]))));
    return names.get(name.toLowerCase()) ?? name;
  };
  let pending: TransferMessage[] = [];
  const pubsub = createPubsubStore(stores.db);
  const pubsubTransfer = createPubsubTransfer(stores.db);
  /** The stored lists of the node whose records are being applied (they follow their node). */
  let nodeState: {
    key: string; affiliations: Map<string, PubsubAffiliation>; subscriptions: Map<string, PubsubSubscriptionState>; items: Map<string, PubsubItem>;
  } | null = null;
  const stateOf = async (service: string, node: string) => {
    const key = `${service} ${node}`;
    if (nodeState?.key !== key) {
      const [affiliations, subscriptions, items] = await Promise.all([
        pubsub.affiliations(service, node), pubsub.subscriptions(service, node), pubsubTransfer.items(service, node),
      ]);
      nodeState = {
        key, affiliations: new Map(affiliations.map((a) => [a.jid, a.affiliation])),
        subscriptions: new Map(subscriptions.map((x) => [x.jid, x.state])), items: new Map(items.map((i) => [i.id, i])),
      };
    }
    return nodeState;
  };

  /**
   * A dry run meets no store refusing a display name: it keeps the service's names itself (lower case
   * → a category, or a room's localpart), as the import would leave them, and refuses as the store would.
   */
  const displayNames = new Map<string, Map<string, { room: string | null }>>();
  const namesOf = async (service: string) => {
    let names = displayNames.get(service);
    if (!names) {
      names = new Map();
      for (const c of await stores.chat.categories(service)) names.set(c.name.toLowerCase(), { room: null });
      for (const r of await stores.chat.rooms(service)) names.set(r.name.toLowerCase(), { room: r.room });
      displayNames.set(service, names);
    }
    return names;
  };
  const claimForDryRun = async (service: string, name: string, owner: { room: string | null }, previous?: string) => {
    const names = await namesOf(service);
    const holder = names.get(name.toLowerCase());
    if (holder && holder.room !== owner.room) throw new NameTaken(name, holder.room === null ? 'category' : 'room');
    if (previous !== undefined) names.delete(previous.toLowerCase());
    names.set(name.toLowerCase(), owner);
  };

  const flushMessages = async () => {
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    let created: number;
    if (write) {
      // The insert skips what is archived already (and repeats within the batch): what it added is what was new.
      created = await stores.transfer.restoreMessages(batch);
    } else {
      const have = await stores.transfer.existingMessages(batch);
      created = new Set(batch.filter((m) => !have.has(`${m.archive} ${m.stanzaId}`)).map((m) => `${m.archive} ${m.stanzaId}`)).size;
    }
    count('message', 'created', created);
    count('message', 'unchanged', batch.length - created);
    tick(batch.length);
  };

  const apply = async (rec: DataRecord): Promise<Outcome> => {
    switch (rec.type) {
      case 'user': {
        const cur = await stores.users.get(rec.username);
        const next = { username: rec.username, disabled: rec.disabled, createdAt: new Date(rec.createdAt), credentials: { sha1: scramIn(rec.sha1), sha256: scramIn(rec.sha256) } };
        if (cur && same(
          { d: cur.disabled, t: cur.createdAt.getTime(), c: credentialsText(cur.credentials) },
          { d: next.disabled, t: next.createdAt.getTime(), c: credentialsText(next.credentials) },
        )) return 'unchanged';
        if (write) await stores.transfer.putUser(next);
        return cur ? 'overwritten' : 'created';
      }
      case 'roster-item': {
        const { type: _t, username, ...item } = rec;
        const cur = await stores.roster.getItem(username, item.jid);
        if (cur && same({ ...cur, groups: sorted(cur.groups) }, { ...item, groups: sorted(item.groups) })) return 'unchanged';
        if (write) await stores.roster.put(username, item);
        return cur ? 'overwritten' : 'created';
      }
      case 'roster-pending': {
        const cur = (await stores.roster.listPendingIn(rec.username)).find((p) => p.jid === rec.jid);
        if (cur && cur.stanza === rec.stanza) return 'unchanged';
        if (write) await stores.roster.putPendingIn(rec.username, rec.jid, rec.stanza);
        return cur ? 'overwritten' : 'created';
      }
      case 'user-data': {
        const cur = await stores.userData.get(rec.username, rec.kind, rec.key);
        if (cur === rec.value) return 'unchanged';
        if (write) await stores.userData.put(rec.username, rec.kind, rec.key, rec.value);
        return cur === null ? 'created' : 'overwritten';
      }
      case 'offline': {
        if (offlineOf?.user !== rec.username) {
          offlineOf = { user: rec.username, have: new Set((await stores.transfer.offline(rec.username)).map((m) => `${m.stamp.toISOString()} ${m.stanza}`)) };
        }
        const key = `${new Date(rec.stamp).toISOString()} ${rec.stanza}`;
        if (offlineOf.have.has(key)) return 'unchanged';
        offlineOf.have.add(key);
        if (write) await stores.transfer.restoreOffline(rec.username, [{ stanza: rec.stanza, stamp: new Date(rec.stamp) }]);
        return 'created';
      }
      case 'group': {
        const cur = await stores.directory.getGroup(rec.name);
        directory = true;
        if (cur && cur.description === rec.description && same(sorted(cur.members), sorted(rec.members))) return 'unchanged';
        if (write) {
          await stores.directory.putGroup(rec.name, rec.description);
          await stores.directory.editGroupMembers(rec.name, { add: rec.members, remove: [], clear: true });
        }
        return cur ? 'overwritten' : 'created';
      }
      case 'org-unit': {
        units ??= new Map((await stores.directory.listOrgUnits()).map((o) => [o.path, o.description]));
        const cur = units.get(rec.path);
        directory = true;
        if (cur === rec.description) return 'unchanged';
        units.set(rec.path, rec.description);
        if (write) await stores.directory.putOrgUnit(rec.path, rec.description);
        return cur === undefined ? 'created' : 'overwritten';
      }
      case 'user-org-unit': {
        const cur = (await stores.directory.userEntries([rec.user])).get(rec.user)?.ou ?? null;
        directory = true;
        if (cur === rec.path) return 'unchanged';
        if (write) await stores.directory.setUserOrgUnit(rec.user, rec.path);
        return cur === null ? 'created' : 'overwritten';
      }
      case 'addin': {
        const cur = (await stores.chat.addins(rec.service)).find((a) => a.name.toLowerCase() === rec.name.toLowerCase());
        changedServices.add(rec.service);
        if (cur && cur.name === rec.name && cur.url === rec.url) return 'unchanged';
        if (write) await stores.chat.putAddin({ service: rec.service, name: rec.name, url: rec.url }, cur?.name);
        return cur ? 'overwritten' : 'created';
      }
      case 'settings': {
        const { type: _t, service, ...settings } = rec;
        const cur = await stores.chat.settings(service);
        changedServices.add(service);
        if (same(cur, settings)) return 'unchanged';
        if (write) await stores.chat.putSettings(service, settings);
        return 'overwritten';
      }
      case 'policy': {
        policyList ??= new Map((await stores.chat.policies()).map((p) => [`${p.scope} ${p.subject}`, p.enabled]));
        const key = `${rec.scope} ${rec.subject}`;
        const cur = policyList.get(key);
        policies = true;
        if (cur === rec.enabled) return 'unchanged';
        policyList.set(key, rec.enabled);
        if (write) await stores.chat.setPolicy(rec.scope, rec.subject, rec.enabled);
        return cur === undefined ? 'created' : 'overwritten';
      }
      case 'category': {
        const { type: _t, ...cat } = rec;
        const cur = (await stores.chat.categories(cat.service)).find((c) => c.name.toLowerCase() === cat.name.toLowerCase());
        changedServices.add(cat.service);
        const norm = (c: typeof cat) => ({ ...c, allowed: sorted(c.allowed), denied: sorted(c.denied), creators: sorted(c.creators) });
        if (cur && same(norm(cur), norm(cat))) return 'unchanged';
        if (!write) await claimForDryRun(cat.service, cat.name, { room: null }, cur?.name);
        if (write) await stores.chat.putCategory(cat, cur?.name);
        categoryNames.get(cat.service)?.set(cat.name.toLowerCase(), write ? cat.name : cur?.name ?? cat.name);
        return cur ? 'overwritten' : 'created';
      }
      case 'chat-room': {
        const { type: _t, roomType, ...fields } = rec;
        const room = { ...fields, type: roomType, category: await storedCategory(fields.service, fields.category), createdAt: new Date(fields.createdAt) };
        const cur = await stores.chat.room(room.service, room.room);
        changedRooms.push({ service: room.service, room: room.room });
        const norm = (r: typeof room) => ({
          ...r, createdAt: r.createdAt.getTime(), members: r.members && sorted(r.members), managers: sorted(r.managers), presenters: sorted(r.presenters),
        });
        if (cur && same(norm(cur), norm(room))) return 'unchanged';
        if (!write) await claimForDryRun(room.service, room.name, { room: room.room }, cur?.name);
        if (write) await stores.chat.putRoom(room);
        return cur ? 'overwritten' : 'created';
      }
      case 'muc-room': {
        const next = {
          service: rec.service, name: rec.name, config: rec.config, affiliations: rec.affiliations, persistent: rec.persistent,
          subject: rec.subject ? { ...rec.subject, stamp: new Date(rec.subject.stamp) } : null, createdAt: new Date(rec.createdAt),
        };
        const cur = await stores.rooms.get(rec.service, rec.name);
        const norm = (r: typeof next) => ({ ...r, createdAt: r.createdAt.getTime(), subject: r.subject && { ...r.subject, stamp: r.subject.stamp.getTime() } });
        if (cur && same(norm(cur), norm(next))) return 'unchanged';
        if (write) await stores.rooms.put(next);
        return cur ? 'overwritten' : 'created';
      }
      case 'invitation': {
        if (invitationsOf?.user !== rec.user) {
          const have = new Set<string>();
          for (let after = 0; ;) {
            const page = await stores.chat.invitations(rec.user, after, BATCH);
            if (page.length === 0) break;
            after = page[page.length - 1]!.id;
            for (const i of page) have.add(canon([i.service, i.room, i.inviter, i.at.getTime()]));
          }
          invitationsOf = { user: rec.user, have };
        }
        const at = new Date(rec.at);
        const key = canon([rec.service, rec.room, rec.inviter, at.getTime()]);
        if (invitationsOf.have.has(key)) return 'unchanged';
        invitationsOf.have.add(key);
        if (write) await stores.transfer.restoreInvitations([{ user: rec.user, service: rec.service, room: rec.room, inviter: rec.inviter, at }]);
        return 'created';
      }
      case 'pubsub-node': {
        const next = { service: rec.service, node: rec.node, owner: rec.owner, config: rec.config, createdAt: new Date(rec.createdAt) };
        const cur = await pubsubTransfer.node(rec.service, rec.node);
        const norm = (n: typeof next) => ({ ...n, createdAt: n.createdAt.getTime() });
        if (cur && same(norm(cur), norm(next))) return 'unchanged';
        if (write) await pubsubTransfer.putNode(next);
        return cur ? 'overwritten' : 'created';
      }
      case 'pubsub-affiliation': {
        const state = await stateOf(rec.service, rec.node);
        const cur = state.affiliations.get(rec.jid);
        if (cur === rec.affiliation) return 'unchanged';
        state.affiliations.set(rec.jid, rec.affiliation);
        if (write) await pubsub.setAffiliation(rec.service, rec.node, rec.jid, rec.affiliation);
        return cur === undefined ? 'created' : 'overwritten';
      }
      case 'pubsub-subscription': {
        const state = await stateOf(rec.service, rec.node);
        const cur = state.subscriptions.get(rec.jid);
        if (cur === rec.state) return 'unchanged';
        state.subscriptions.set(rec.jid, rec.state);
        if (write) await pubsub.setSubscription(rec.service, rec.node, rec.jid, rec.state);
        return cur === undefined ? 'created' : 'overwritten';
      }
      case 'pubsub-item': {
        const state = await stateOf(rec.service, rec.node);
        const item: PubsubItem = { id: rec.id, publisher: rec.publisher, payload: rec.payload, stamp: new Date(rec.stamp) };
        const cur = state.items.get(rec.id);
        if (cur && cur.publisher === item.publisher && cur.payload === item.payload && cur.stamp.getTime() === item.stamp.getTime()) return 'unchanged';
        state.items.set(rec.id, item);
        if (write) await pubsubTransfer.putItem(rec.service, rec.node, item);
        return cur ? 'overwritten' : 'created';
      }
      case 'message':
        throw new Error('messages are applied in batches');
    }
  };

  let first = true;
  for await (const { text, line } of readLines(opts.file)) {
    if (first) { first = false; continue; }
    const rec = parseLine(text, line);
    if (rec.type === 'end') break;
    if (rec.type === 'message') {
      pending.push({
        archive: rec.archive, stanzaId: rec.stanzaId, stamp: new Date(rec.stamp), fromJid: rec.fromJid, realJid: rec.realJid,
        body: rec.body, stanza: rec.stanza, retracted: rec.retracted,
      });
      if (pending.length >= MESSAGE_BATCH) await flushMessages();
      continue;
    }
    let outcome: Outcome;
    try {
      outcome = await apply(rec);
    } catch (e) {
      if (!(e instanceof NameTaken)) throw e;
      outcome = 'skipped';
      if (skippedReasons.length < 20) skippedReasons.push(`line ${line}: ${rec.type}: ${e.message}`);
    }
    count(rec.type, outcome);
    tick();
  }
  await flushMessages();
  return {
    file: opts.file, dryRun: opts.dryRun, header, records, report, skippedReasons,
    changed: { services: [...changedServices], rooms: changedRooms, directory, policies },
  };
}

function credentialsText(c: StoredCredentials): string {
  return [c.sha1, c.sha256].map((s) => s === null ? '-' : `${s.salt.toString('base64')}:${s.iterations}:${s.storedKey.toString('base64')}:${s.serverKey.toString('base64')}`).join('|');
}
