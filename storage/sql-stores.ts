import { KeyBatcher } from './batch.js';
import { C, credentialParams, num, toBuffer, toUserRecord, type UserRow } from './sql-rows.js';
import { createChatStore, createDirectoryStore } from './sql-chat.js';
import { createTransferStore } from './sql-transfer.js';
import type {
  ArchiveMatch,
  ArchivedMessage,
  ArchiveQueryResult,
  ArchiveSearch,
  ArchiveStore,
  DataStores,
  Db,
  OfflineMessage,
  OfflineStore,
  Roster,
  RosterItem,
  RosterStore,
  RoomAffiliation,
  RoomRecord,
  RoomStore,
  StoredCredentials,
  Subscription,
  UserDataStore,
  UserRecord,
  UserStore,
} from './types.js';


/**
 * The read paths every login hits go through a KeyBatcher: concurrent calls for many users share one
 * statement over `unnest($1::text[]) WITH ORDINALITY`. Rows come back with their key's position `i`,
 * so they are handed out by position rather than by comparing the text PostgreSQL returns.
 */
const KEYS = 'unnest($1::text[]) WITH ORDINALITY AS k(username, i)';

/** Groups rows (already ordered per key) by their key's position, converting each key's rows. */
function byKey<R extends { i: unknown }, V>(keys: string[], rows: R[], convert: (rows: R[]) => V): Map<string, V> {
  const groups = new Map<number, R[]>();
  for (const r of rows) {
    const i = num(r.i);
    const group = groups.get(i);
    if (group) group.push(r);
    else groups.set(i, [r]);
  }
  const out = new Map<string, V>();
  for (const [i, group] of groups) out.set(keys[i - 1] as string, convert(group));
  return out;
}

/**
 * A per-username loader backed by a KeyBatcher. PostgreSQL text cannot hold NUL, so such a name
 * would fail the whole batch: it runs alone and fails only its own caller, as before.
 */
function batched<V>(run: (keys: string[]) => Promise<Map<string, V>>, fallback: () => V): (username: string) => Promise<V> {
  const batcher = new KeyBatcher(run, fallback);
  return async (username) => {
    if (!username.includes('\0')) return batcher.load(username);
    const found = await run([username]);
    return found.has(username) ? (found.get(username) as V) : fallback();
  };
}


function createUserStore(db: Db): UserStore {
  const getUser = batched<UserRecord | null>(async (keys) => {
    const rows = await db.query<UserRow & { i: unknown }>(
      `SELECT k.i, u.* FROM ${KEYS} JOIN users u ON u.username = k.username`,
      [keys],
    );
    return byKey(keys, rows, ([r]) => toUserRecord(r!));
  }, () => null);
  return {
    async create(username, credentials) {
      const rows = await db.query(
        `INSERT INTO users (username, sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,
           sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (username) DO NOTHING RETURNING username`,
        [username, ...credentialParams(credentials)],
      );
      return rows.length > 0;
    },
    get(username): Promise<UserRecord | null> {
      return getUser(username);
    },
    async setCredentials(username, credentials) {
      const rows = await db.query(
        `UPDATE users SET sha1_salt = $2, sha1_iterations = $3, sha1_stored_key = $4, sha1_server_key = $5,
           sha256_salt = $6, sha256_iterations = $7, sha256_stored_key = $8, sha256_server_key = $9
         WHERE username = $1 RETURNING username`,
        [username, ...credentialParams(credentials)],
      );
      return rows.length > 0;
    },
    async setDisabled(username, disabled) {
      const rows = await db.query('UPDATE users SET disabled = $2 WHERE username = $1 RETURNING username', [
        username,
        disabled,
      ]);
      return rows.length > 0;
    },
    async delete(username) {
      // Roster, requests, offline messages and user data go with it (ON DELETE CASCADE).
      const rows = await db.query('DELETE FROM users WHERE username = $1 RETURNING username', [username]);
      return rows.length > 0;
    },
    async list() {
      const rows = await db.query<{ username: string }>(`SELECT username FROM users ORDER BY username ${C}`);
      return rows.map((r) => r.username);
    },
    async count() {
      const [r] = await db.query<{ n: unknown }>('SELECT count(*) AS n FROM users');
      return num(r?.n);
    },
  };
}

interface RosterRow {
  version: unknown;
  jid: string | null;
  name: string | null;
  subscription: Subscription;
  ask_out: boolean;
  approved: boolean;
  groups: string[];
}

function toItem(r: RosterRow): RosterItem {
  return {
    jid: r.jid as string,
    name: r.name,
    subscription: r.subscription,
    askOut: r.ask_out,
    approved: r.approved,
    groups: r.groups ?? [],
  };
}

const BUMP_VERSION = `INSERT INTO roster_versions (username, version) VALUES ($1, 1)
  ON CONFLICT (username) DO UPDATE SET version = roster_versions.version + 1 RETURNING version`;

function createRosterStore(db: Db): RosterStore {
  const getRoster = batched<Roster>(async (keys) => {
    // One statement, so each version and its items come from the same snapshot.
    const rows = await db.query<RosterRow & { i: unknown }>(
      `SELECT k.i, coalesce(v.version, 0) AS version, r.jid, r.name, r.subscription, r.ask_out, r.approved, r.groups
       FROM ${KEYS}
       LEFT JOIN roster_versions v ON v.username = k.username
       LEFT JOIN roster_items r ON r.username = k.username
       ORDER BY k.i, r.jid ${C}`,
      [keys],
    );
    return byKey(keys, rows, (group) => ({
      version: num(group[0]?.version ?? 0),
      items: group.filter((r) => r.jid !== null).map(toItem),
    }));
  }, () => ({ version: 0, items: [] }));
  const listPending = batched<{ jid: string; stanza: string }[]>(async (keys) => {
    const rows = await db.query<{ i: unknown; jid: string; stanza: string }>(
      `SELECT k.i, s.jid, s.stanza FROM ${KEYS}
       JOIN subscription_requests s ON s.username = k.username
       ORDER BY k.i, s.jid ${C}`,
      [keys],
    );
    return byKey(keys, rows, (group) => group.map((r) => ({ jid: r.jid, stanza: r.stanza })));
  }, () => []);
  return {
    get(username): Promise<Roster> {
      return getRoster(username);
    },
    async getItem(username, jid) {
      const [r] = await db.query<RosterRow>(
        'SELECT jid, name, subscription, ask_out, approved, groups FROM roster_items WHERE username = $1 AND jid = $2',
        [username, jid],
      );
      return r ? toItem(r) : null;
    },
    put(username, item) {
      return db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO roster_items (username, jid, name, subscription, ask_out, approved, groups)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (username, jid) DO UPDATE SET name = EXCLUDED.name, subscription = EXCLUDED.subscription,
             ask_out = EXCLUDED.ask_out, approved = EXCLUDED.approved, groups = EXCLUDED.groups`,
          [username, item.jid, item.name, item.subscription, item.askOut, item.approved, item.groups],
        );
        const [v] = await tx.query<{ version: unknown }>(BUMP_VERSION, [username]);
        return num(v?.version);
      });
    },
    remove(username, jid) {
      return db.transaction(async (tx) => {
        const gone = await tx.query('DELETE FROM roster_items WHERE username = $1 AND jid = $2 RETURNING jid', [
          username,
          jid,
        ]);
        if (gone.length === 0) return null;
        const [v] = await tx.query<{ version: unknown }>(BUMP_VERSION, [username]);
        return num(v?.version);
      });
    },
    async putPendingIn(username, jid, stanza) {
      await db.query(
        `INSERT INTO subscription_requests (username, jid, stanza) VALUES ($1, $2, $3)
         ON CONFLICT (username, jid) DO UPDATE SET stanza = EXCLUDED.stanza`,
        [username, jid, stanza],
      );
    },
    async removePendingIn(username, jid) {
      const rows = await db.query(
        'DELETE FROM subscription_requests WHERE username = $1 AND jid = $2 RETURNING jid',
        [username, jid],
      );
      return rows.length > 0;
    },
    listPendingIn(username) {
      return listPending(username);
    },
  };
}

/** One user's share of a batched take; `claimed` once a caller has returned the rows. */
interface TakenQueue {
  messages: OfflineMessage[];
  claimed: boolean;
}

function createOfflineStore(db: Db): OfflineStore {
  const takeQueue = batched<TakenQueue>(async (keys) => {
    const rows = await db.query<{ i: unknown; id: unknown; stanza: string; stamp: Date }>(
      `WITH d AS (
         DELETE FROM offline_messages m USING ${KEYS} WHERE m.username = k.username
         RETURNING k.i, m.id, m.stanza, m.stamp)
       SELECT i, id, stanza, stamp FROM d ORDER BY i, id`,
      [keys],
    );
    return byKey(keys, rows, (group) => ({
      messages: group.map((r) => ({ id: num(r.id), stanza: r.stanza, stamp: new Date(r.stamp) })),
      claimed: false,
    }));
  }, () => ({ messages: [], claimed: false }));
  return {
    push(username, stanza, limit) {
      return db.transaction(async (tx) => {
        // Locking the user row serialises concurrent pushes, so the count below cannot go stale.
        // An unknown user has no row and no queue: treated like a full one.
        const user = await tx.query('SELECT 1 FROM users WHERE username = $1 FOR NO KEY UPDATE', [username]);
        if (user.length === 0) return false;
        const rows = await tx.query(
          `INSERT INTO offline_messages (username, stanza)
           SELECT $1, $2 WHERE (SELECT count(*) FROM offline_messages WHERE username = $1) < $3
           RETURNING id`,
          [username, stanza, limit],
        );
        return rows.length > 0;
      });
    },
    async take(username): Promise<OfflineMessage[]> {
      // Takes of one user in the same batch share its result: the first caller gets the messages,
      // the others an empty queue, as if they had run right after it.
      const queue = await takeQueue(username);
      if (queue.claimed) return [];
      queue.claimed = true;
      return queue.messages;
    },
    async count(username) {
      const [r] = await db.query<{ n: unknown }>('SELECT count(*) AS n FROM offline_messages WHERE username = $1', [
        username,
      ]);
      return num(r?.n);
    },
  };
}

function createUserDataStore(db: Db): UserDataStore {
  // One loader per kind; kinds are a handful of constants chosen by the modules.
  const listers = new Map<string, (username: string) => Promise<{ key: string; value: string }[]>>();
  const listerOf = (kind: string) => {
    let lister = listers.get(kind);
    if (!lister) {
      lister = batched(async (keys) => {
        const rows = await db.query<{ i: unknown; key: string; value: string }>(
          `SELECT k.i, d.key, d.value FROM ${KEYS}
           JOIN user_data d ON d.username = k.username AND d.kind = $2
           ORDER BY k.i, d.key ${C}`,
          [keys, kind],
        );
        return byKey(keys, rows, (group) => group.map((r) => ({ key: r.key, value: r.value })));
      }, () => []);
      listers.set(kind, lister);
    }
    return lister;
  };
  return {
    async get(username, kind, key) {
      const [r] = await db.query<{ value: string }>(
        'SELECT value FROM user_data WHERE username = $1 AND kind = $2 AND key = $3',
        [username, kind, key],
      );
      return r ? r.value : null;
    },
    async put(username, kind, key, value) {
      await db.query(
        `INSERT INTO user_data (username, kind, key, value) VALUES ($1, $2, $3, $4)
         ON CONFLICT (username, kind, key) DO UPDATE SET value = EXCLUDED.value`,
        [username, kind, key, value],
      );
    },
    async delete(username, kind, key) {
      const rows = await db.query(
        'DELETE FROM user_data WHERE username = $1 AND kind = $2 AND key = $3 RETURNING key',
        [username, kind, key],
      );
      return rows.length > 0;
    },
    list(username, kind) {
      return listerOf(kind)(username);
    },
    async clear(username, kind) {
      const rows = await db.query('DELETE FROM user_data WHERE username = $1 AND kind = $2 RETURNING key', [
        username,
        kind,
      ]);
      return rows.length;
    },
  };
}

interface RoomRow {
  service: string;
  name: string;
  config: Record<string, unknown>;
  affiliations: Record<string, RoomAffiliation>;
  subject_text: string | null;
  subject_nick: string | null;
  subject_stamp: Date | null;
  persistent: boolean;
  created_at: Date;
}

const ROOM_COLUMNS =
  'service, name, config, affiliations, subject_text, subject_nick, subject_stamp, persistent, created_at';

function toRoom(r: RoomRow): RoomRecord {
  return {
    service: r.service,
    name: r.name,
    config: r.config,
    affiliations: r.affiliations,
    subject:
      r.subject_text === null
        ? null
        : { text: r.subject_text, nick: r.subject_nick ?? '', stamp: new Date(r.subject_stamp as Date) },
    createdAt: new Date(r.created_at),
    persistent: r.persistent,
  };
}

function createRoomStore(db: Db): RoomStore {
  return {
    async get(service, name) {
      const [r] = await db.query<RoomRow>(`SELECT ${ROOM_COLUMNS} FROM rooms WHERE service = $1 AND name = $2`, [
        service,
        name,
      ]);
      return r ? toRoom(r) : null;
    },
    async put(room) {
      // jsonb goes in as JSON text: pg would turn a JavaScript array into a PostgreSQL array.
      await db.query(
        `INSERT INTO rooms (${ROOM_COLUMNS})
         VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6, $7::timestamptz, $8, $9::timestamptz)
         ON CONFLICT (service, name) DO UPDATE SET config = EXCLUDED.config, affiliations = EXCLUDED.affiliations,
           subject_text = EXCLUDED.subject_text, subject_nick = EXCLUDED.subject_nick,
           subject_stamp = EXCLUDED.subject_stamp, persistent = EXCLUDED.persistent, created_at = EXCLUDED.created_at`,
        [
          room.service,
          room.name,
          JSON.stringify(room.config),
          JSON.stringify(room.affiliations),
          room.subject?.text ?? null,
          room.subject?.nick ?? null,
          room.subject ? room.subject.stamp.toISOString() : null,
          room.persistent,
          room.createdAt.toISOString(),
        ],
      );
    },
    async delete(service, name) {
      const rows = await db.query('DELETE FROM rooms WHERE service = $1 AND name = $2 RETURNING name', [service, name]);
      return rows.length > 0;
    },
    async list(service, opts) {
      const params: unknown[] = [service];
      const where = ['service = $1'];
      if (opts.publicOnly) where.push(LISTED);
      if (opts.after !== undefined) {
        params.push(opts.after);
        where.push(`name > $${params.length}`);
      }
      params.push(opts.limit);
      const rows = await db.query<RoomRow>(
        `SELECT ${ROOM_COLUMNS} FROM rooms WHERE ${where.join(' AND ')} ORDER BY name ${C} LIMIT $${params.length}`,
        params,
      );
      return rows.map(toRoom);
    },
    async count(service, opts = {}) {
      const [r] = await db.query<{ n: unknown }>(
        `SELECT count(*) AS n FROM rooms WHERE service = $1${opts.publicOnly ? ` AND ${LISTED}` : ''}`, [service]);
      return num(r?.n);
    },
    async setAffiliation(service, name, jid, affiliation) {
      const rows =
        affiliation === 'none'
          ? await db.query(
              'UPDATE rooms SET affiliations = affiliations - $3::text WHERE service = $1 AND name = $2 RETURNING name',
              [service, name, jid],
            )
          : await db.query(
              `UPDATE rooms SET affiliations = affiliations || jsonb_build_object($3::text, $4::text)
               WHERE service = $1 AND name = $2 RETURNING name`,
              [service, name, jid, affiliation],
            );
      return rows.length > 0;
    },
  };
}

interface ArchiveRow {
  id: unknown;
  archive: string;
  stanza_id: string;
  stamp: Date;
  from_jid: string;
  real_jid: string | null;
  body: string | null;
  stanza: string;
  retracted: boolean;
}

const ARCHIVE_COLUMNS = 'id, archive, stanza_id, stamp, from_jid, real_jid, body, stanza, retracted';

function toArchived(r: ArchiveRow): ArchivedMessage {
  return {
    id: num(r.id),
    archive: r.archive,
    stanzaId: r.stanza_id,
    stamp: new Date(r.stamp),
    fromJid: r.from_jid,
    realJid: r.real_jid,
    body: r.body,
    stanza: r.stanza,
    retracted: r.retracted,
  };
}

/** Rooms a public listing shows: public and not waiting for their first configuration. */
const LISTED = `config -> 'public' = 'true'::jsonb AND COALESCE(config -> 'locked', 'false'::jsonb) <> 'true'::jsonb`;

/** Rows counted at most for a filtered result set's <count/> and a page's index. */
const COUNT_BOUND = 2_000;
/**
 * The same for searches (our match and authors filters, and every search across archives): counting
 * visits each matching row's heap page, and 2,000 rows scattered over a large table cost 100-300 ms.
 */
const SEARCH_COUNT_BOUND = 200;

function createArchiveStore(db: Db, fulltextLanguage: string): ArchiveStore {
  /** Row ids of the named stanza ids of one archive; absent ids are left out. */
  async function rowIds(archive: string, stanzaIds: string[]): Promise<Map<string, number>> {
    if (stanzaIds.length === 0) return new Map();
    const rows = await db.query<{ id: unknown; stanza_id: string }>(
      'SELECT id, stanza_id FROM archive WHERE archive = $1 AND stanza_id = ANY($2::text[])',
      [archive, stanzaIds],
    );
    return new Map(rows.map((r) => [r.stanza_id, num(r.id)]));
  }

  return {
    async append(entries) {
      if (entries.length === 0) return [];
      // One statement for the whole batch; WITH ORDINALITY keeps the ids in input order.
      const rows = await db.query<{ id: unknown; archive: string; stanza_id: string }>(
        `INSERT INTO archive (archive, stanza_id, stamp, from_jid, real_jid, body, stanza)
         SELECT a, s, t, f, r, b, x
         FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[])
           WITH ORDINALITY AS e(a, s, t, f, r, b, x, i)
         ORDER BY i
         RETURNING id, archive, stanza_id`,
        [
          entries.map((e) => e.archive),
          entries.map((e) => e.stanzaId),
          entries.map((e) => e.stamp.toISOString()),
          entries.map((e) => e.fromJid),
          entries.map((e) => e.realJid),
          entries.map((e) => e.body),
          entries.map((e) => e.stanza),
        ],
      );
      const ids = new Map(rows.map((r) => [JSON.stringify([r.archive, r.stanza_id]), num(r.id)]));
      return entries.map((e) => {
        const id = ids.get(JSON.stringify([e.archive, e.stanzaId]));
        if (id === undefined) throw new Error(`archive insert returned no id for ${e.stanzaId}`);
        return { id, stanzaId: e.stanzaId };
      });
    },

    async query(archive, q) {
      const anchors = await rowIds(
        archive,
        [q.afterId, q.beforeId, q.after, typeof q.before === 'string' ? q.before : undefined].filter(
          (v): v is string => v !== undefined,
        ),
      );
      const anchor = (stanzaId: string | undefined): number | null | undefined =>
        stanzaId === undefined ? undefined : (anchors.get(stanzaId) ?? null);
      const afterId = anchor(q.afterId);
      const beforeId = anchor(q.beforeId);
      const after = anchor(q.after);
      const before = anchor(typeof q.before === 'string' ? q.before : undefined);
      if (afterId === null || beforeId === null || after === null || before === null) {
        return { entries: [], complete: true, count: 0, notFound: true };
      }

      const params: unknown[] = [archive];
      const param = (v: unknown): string => {
        params.push(v);
        return `$${params.length}`;
      };
      const where = ['archive = $1'];
      if (q.start) where.push(`stamp >= ${param(q.start.toISOString())}::timestamptz`);
      if (q.end) where.push(`stamp <= ${param(q.end.toISOString())}::timestamptz`);
      if (q.with?.occupant !== undefined) where.push(`from_jid = ${param(q.with.occupant)}`);
      if (q.with?.realJid !== undefined) where.push(`real_jid = ${param(q.with.realJid)}`);
      if (afterId !== undefined) where.push(`id > ${param(afterId)}`);
      if (beforeId !== undefined) where.push(`id < ${param(beforeId)}`);
      if (q.ids) where.push(`stanza_id = ANY(${param(q.ids)}::text[])`);
      if (q.fulltext !== undefined) where.push(`tsv @@ plainto_tsquery('${fulltextLanguage}', ${param(q.fulltext)})`);
      if (q.match) where.push(matchCondition(q.match, fulltextLanguage, param));
      if (q.authors) where.push(authorsCondition(q.authors, param));
      const filters = where.join(' AND ');
      const filterParams = [...params];

      // The result set is ordered by id, newest first for searches (text or authors); paging follows that order.
      const newestFirst = q.fulltext !== undefined || q.match !== undefined || q.authors !== undefined;
      const follows = newestFirst ? '<' : '>';
      const precedes = newestFirst ? '>' : '<';
      const cursor: string[] = [];
      if (after !== undefined) cursor.push(`id ${follows} ${param(after)}`);
      if (before !== undefined) cursor.push(`id ${precedes} ${param(before)}`);
      const backwards = q.before !== undefined;
      const descending = newestFirst !== backwards;
      const offset = after === undefined && !backwards && q.index ? ` OFFSET ${param(q.index)}` : '';
      // A search in a date window: the window's rows first (its index), then newest first; in id order
      // from the newest, the planner would read through everything after the window.
      const window = newestFirst && (q.start !== undefined || q.end !== undefined) &&
        (await estimatedRows(db, filters, filterParams)) <= NARROW_TEXT;
      const pageCond = [filters, ...cursor].join(' AND ');
      const pageQuery = db.query<ArchiveRow>(
        `SELECT ${ARCHIVE_COLUMNS} FROM ${window ? `(SELECT * FROM archive WHERE ${pageCond} OFFSET 0) a` : `archive WHERE ${pageCond}`}
         ORDER BY id ${descending ? 'DESC' : 'ASC'} LIMIT ${param(q.limit + 1)}${offset}`,
        params,
      );

      // Counts (XEP-0059 <count/> and <first index/>) without scanning a large archive: the whole
      // archive's size is kept by triggers; anything else is counted only up to COUNT_BOUND rows,
      // and left out beyond (XEP-0059 §2.6 allows that when counting would be exceptionally costly).
      // The page's position follows from the cursor, so the count runs beside the page query.
      const unfiltered = where.length === 1;
      const textOnly = !unfiltered && !q.start && !q.end && !q.with && !q.authors && afterId === undefined && beforeId === undefined && !q.ids;
      const wide = textOnly && (await isWide(db, [archive]));
      const countFilters = wide ? unindexed(filters, 'archive = $1') : filters;
      const bound = q.match !== undefined || q.authors !== undefined ? SEARCH_COUNT_BOUND : COUNT_BOUND;
      // Unindexed, the count follows the page's plan (id order, or the full-text index then a sort).
      const bounded = (cond: string) => `(SELECT count(*) FROM (SELECT 1 FROM archive WHERE ${cond}${wide ? ' ORDER BY id DESC' : ''} LIMIT ${bound + 1}) s)`;
      const countParams = [...filterParams];
      const cp = (v: unknown): string => {
        countParams.push(v);
        return `$${countParams.length}`;
      };
      // Rows before an `after` cursor (it included), or from a `before` cursor (it included) to the end.
      let sideCond: string | null = null;
      if (!backwards && after !== undefined) sideCond = `${countFilters} AND id ${newestFirst ? '>=' : '<='} ${cp(after)}`;
      if (backwards && before !== undefined) sideCond = `${countFilters} AND id ${newestFirst ? '<=' : '>='} ${cp(before)}`;
      const countQuery = db.query<{ total: unknown; side: unknown }>(
        `SELECT ${unfiltered ? 'COALESCE((SELECT n FROM archive_count WHERE archive = $1), 0)' : bounded(countFilters)} AS total,
                ${sideCond === null ? '0' : bounded(sideCond)} AS side`,
        countParams,
      );
      const [rows, [c]] = await Promise.all([pageQuery, countQuery]);
      const complete = rows.length <= q.limit;
      const page = rows.slice(0, q.limit).map(toArchived);
      if (backwards) page.reverse();

      const totalRaw = num(c?.total);
      const count = totalRaw <= bound || unfiltered ? totalRaw : undefined;
      const side = num(c?.side);
      let firstIndex: number | undefined;
      if (page.length > 0 && side <= bound) {
        if (!backwards) firstIndex = after !== undefined ? side : (offset ? q.index! : 0);
        else if (count !== undefined) firstIndex = count - side - page.length;
      }
      const result: ArchiveQueryResult = { entries: page, complete };
      if (count !== undefined) result.count = count;
      if (firstIndex !== undefined) result.firstIndex = firstIndex;
      return result;
    },

    async get(archive, stanzaId) {
      const [r] = await db.query<ArchiveRow>(
        `SELECT ${ARCHIVE_COLUMNS} FROM archive WHERE archive = $1 AND stanza_id = $2`,
        [archive, stanzaId],
      );
      return r ? toArchived(r) : null;
    },

    async lastN(archive, n, opts = {}) {
      const params: unknown[] = [archive, n];
      let since = '';
      if (opts.since) {
        params.push(opts.since.toISOString());
        since = ' AND stamp >= $3::timestamptz';
      }
      const rows = await db.query<ArchiveRow>(
        `SELECT ${ARCHIVE_COLUMNS} FROM archive WHERE archive = $1${since} ORDER BY id DESC LIMIT $2`,
        params,
      );
      const picked: ArchivedMessage[] = [];
      let chars = 0;
      for (const r of rows) {
        chars += r.stanza.length;
        if (opts.maxChars !== undefined && chars > opts.maxChars) break;
        picked.push(toArchived(r));
      }
      return picked.reverse();
    },

    async retract(archive, stanzaId, tombstoneStanza) {
      // tsv is generated from body, so a null body also takes the entry out of full-text results.
      const rows = await db.query(
        `UPDATE archive SET retracted = true, stanza = $3, body = NULL
         WHERE archive = $1 AND stanza_id = $2 RETURNING id`,
        [archive, stanzaId, tombstoneStanza],
      );
      return rows.length > 0;
    },

    async removeArchive(archive) {
      const [r] = await db.query<{ n: unknown }>(
        'WITH gone AS (DELETE FROM archive WHERE archive = $1 RETURNING 1) SELECT count(*) AS n FROM gone',
        [archive],
      );
      return num(r?.n);
    },

    async deleteBefore(archive, before, limit) {
      if (limit <= 0) return 0;
      // Oldest first through the (archive, stamp) index, a bounded batch so no statement holds the table long.
      const [r] = await db.query<{ n: unknown }>(
        `WITH gone AS (
           DELETE FROM archive WHERE id IN (
             SELECT id FROM archive WHERE archive = $1 AND stamp <= $2::timestamptz ORDER BY stamp, id LIMIT $3)
           RETURNING 1)
         SELECT count(*) AS n FROM gone`,
        [archive, before.toISOString(), limit],
      );
      return num(r?.n);
    },

    async rewrite(archive, entries) {
      if (entries.length === 0) return [];
      const rows = await db.query<{ stanza_id: string }>(
        `UPDATE archive a SET stanza = e.x, body = e.b, retracted = e.r
         FROM unnest($2::text[], $3::text[], $4::text[], $5::boolean[]) AS e(s, x, b, r)
         WHERE a.archive = $1 AND a.stanza_id = e.s
         RETURNING a.stanza_id`,
        [archive, entries.map((e) => e.stanzaId), entries.map((e) => e.stanza), entries.map((e) => e.body), entries.map((e) => e.retracted)],
      );
      return rows.map((r) => r.stanza_id);
    },

    async sizes(archives) {
      if (archives.length === 0) return new Map();
      const rows = await db.query<{ archive: string; n: unknown; bytes: unknown }>(
        'SELECT archive, n, bytes FROM archive_count WHERE archive = ANY($1::text[])',
        [archives],
      );
      return new Map(rows.map((r) => [r.archive, { messages: num(r.n), bytes: num(r.bytes) }]));
    },

    search(archives, q) {
      return searchArchives(db, fulltextLanguage, archives, q);
    },
  };
}

/**
 * Archives holding more rows than this together, and a quarter of the table, are not narrowed by the
 * archive index in a filtered count (nor in a search's page): a bitmap of a million-row archive ANDed
 * with the full-text one cost 0.5-1 s, where the full-text index alone (a rare word) or a scan in id
 * order that stops early (a common one) takes milliseconds. Smaller sets keep the index: a scan in id
 * order through rows mostly of other archives is what costs there.
 */
const WIDE_ARCHIVE = 100_000;

/** Do these archives hold more than WIDE_ARCHIVE rows and a quarter of the table (kept sizes, archive_count)? */
async function isWide(db: Db, archives: string[]): Promise<boolean> {
  const [r] = await db.query<{ n: unknown; all: unknown }>(
    'SELECT COALESCE(sum(n) FILTER (WHERE archive = ANY($1::text[])), 0) AS n, COALESCE(sum(n), 0) AS all FROM archive_count',
    [archives],
  );
  const n = num(r?.n);
  return n > WIDE_ARCHIVE && n * 4 > num(r?.all);
}

/** Rows the full-text index alone may find for a search's text, below which it drives the search. */
const NARROW_TEXT = 10_000;

/** The search's text conditions alone, with their own parameters; null without text. */
function textCondition(q: ArchiveSearch, language: string): { sql: string; params: unknown[] } | null {
  const params: unknown[] = [];
  const param = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  const conds: string[] = [];
  if (q.fulltext !== undefined) conds.push(`tsv @@ plainto_tsquery('${language}', ${param(q.fulltext)})`);
  if (q.match) conds.push(matchCondition(q.match, language, param));
  return conds.length ? { sql: conds.join(' AND '), params } : null;
}

/** The planner's estimate of the rows matching a condition (EXPLAIN, nothing run). */
async function estimatedRows(db: Db, cond: string, params: unknown[]): Promise<number> {
  const rows = await db.query<Record<string, unknown>>(`EXPLAIN (FORMAT JSON) SELECT 1 FROM archive WHERE ${cond}`, params);
  const raw = rows[0]?.['QUERY PLAN'];
  const plan = (typeof raw === 'string' ? JSON.parse(raw) : raw) as { Plan?: { 'Plan Rows'?: number } }[] | undefined;
  return plan?.[0]?.Plan?.['Plan Rows'] ?? Number.POSITIVE_INFINITY;
}

/** The filters with their leading archive condition out of the planner's index choices (same rows). */
function unindexed(filters: string, archiveCond: string): string {
  return filters.startsWith(archiveCond) ? `(${archiveCond}) IS TRUE${filters.slice(archiveCond.length)}` : filters;
}

/**
 * ArchiveStore.search: one statement over the archives named, newest first by row id (the cursor),
 * with the same bounded count as a single archive's query.
 */
async function searchArchives(db: Db, fulltextLanguage: string, archives: string[], q: ArchiveSearch): Promise<ArchiveQueryResult> {
  if (archives.length === 0) return { entries: [], complete: true, count: 0 };
  const params: unknown[] = [archives];
  const param = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  const where = ['archive = ANY($1::text[])'];
  if (q.start) where.push(`stamp >= ${param(q.start.toISOString())}::timestamptz`);
  if (q.end) where.push(`stamp <= ${param(q.end.toISOString())}::timestamptz`);
  if (q.fulltext !== undefined) where.push(`tsv @@ plainto_tsquery('${fulltextLanguage}', ${param(q.fulltext)})`);
  if (q.match) where.push(matchCondition(q.match, fulltextLanguage, param));
  if (q.authors) {
    const { realJids, occupants, realJidArchives } = q.authors;
    const any: string[] = [];
    if (realJids?.length) {
      any.push(realJidArchives
        ? `(real_jid = ANY(${param(realJids)}::text[]) AND archive = ANY(${param(realJidArchives)}::text[]))`
        : `real_jid = ANY(${param(realJids)}::text[])`);
    }
    if (occupants?.length) any.push(`from_jid = ANY(${param(occupants)}::text[])`);
    where.push(any.length ? `(${any.join(' OR ')})` : 'false');
  }
  const filters = where.join(' AND ');
  const filterParams = [...params];

  // The archive index, or not (see WIDE_ARCHIVE): not for many archives, nor for a text the full-text
  // index alone narrows to a few rows (as the planner estimates it); always with a date window.
  const unfiltered = where.length === 1;
  const text = textCondition(q, fulltextLanguage);
  const wide = !unfiltered && !q.start && !q.end && (await isWide(db, archives));
  // A narrow text: the full-text index first, whatever the planner would do for ORDER BY id LIMIT n
  // (a scan in id order through the whole table when few rows of the archives match); OFFSET 0 keeps
  // the subquery planned on its own.
  const narrow = !wide && !unfiltered && !q.start && !q.end && !q.authors && text !== null && (await estimatedRows(db, text.sql, text.params)) <= NARROW_TEXT;
  const unindex = wide || narrow;
  // A date window the archives' index narrows to a few rows: those rows first, then newest first.
  const window = !unindex && !unfiltered && (q.start !== undefined || q.end !== undefined) && (await estimatedRows(db, filters, filterParams)) <= NARROW_TEXT;
  const countFilters = unindex ? unindexed(filters, 'archive = ANY($1::text[])') : filters;
  const from = (cond: string) => (narrow || window ? `(SELECT * FROM archive WHERE ${cond} OFFSET 0) a` : `archive WHERE ${cond}`);
  const cursor: string[] = [];
  const before = typeof q.before === 'number' ? q.before : undefined;
  if (q.after !== undefined) cursor.push(`id < ${param(q.after)}`);
  if (before !== undefined) cursor.push(`id > ${param(before)}`);
  const backwards = q.before !== undefined;
  const offset = q.after === undefined && !backwards && q.index ? ` OFFSET ${param(q.index)}` : '';
  const pageQuery = db.query<ArchiveRow>(
    `SELECT ${ARCHIVE_COLUMNS} FROM ${from([countFilters, ...cursor].join(' AND '))}
     ORDER BY id ${backwards ? 'ASC' : 'DESC'} LIMIT ${param(q.limit + 1)}${offset}`,
    params,
  );

  const bounded = (cond: string) => `(SELECT count(*) FROM (SELECT 1 FROM ${from(cond)}${unindex ? ' ORDER BY id DESC' : ''} LIMIT ${SEARCH_COUNT_BOUND + 1}) s)`;
  const countParams = [...filterParams];
  const cp = (v: unknown): string => {
    countParams.push(v);
    return `$${countParams.length}`;
  };
  let sideCond: string | null = null;
  if (!backwards && q.after !== undefined) sideCond = `${countFilters} AND id >= ${cp(q.after)}`;
  if (backwards && before !== undefined) sideCond = `${countFilters} AND id <= ${cp(before)}`;
  const countQuery = db.query<{ total: unknown; side: unknown }>(
    `SELECT ${unfiltered ? 'COALESCE((SELECT sum(n) FROM archive_count WHERE archive = ANY($1::text[])), 0)' : bounded(countFilters)} AS total,
            ${sideCond === null ? '0' : bounded(sideCond)} AS side`,
    countParams,
  );
  const [rows, [c]] = await Promise.all([pageQuery, countQuery]);
  const complete = rows.length <= q.limit;
  const page = rows.slice(0, q.limit).map(toArchived);
  if (backwards) page.reverse();
  const totalRaw = num(c?.total);
  const count = totalRaw <= SEARCH_COUNT_BOUND || unfiltered ? totalRaw : undefined;
  const side = num(c?.side);
  let firstIndex: number | undefined;
  if (page.length > 0 && side <= SEARCH_COUNT_BOUND) {
    if (!backwards) firstIndex = q.after !== undefined ? side : (offset ? q.index! : 0);
    else if (count !== undefined) firstIndex = count - side - page.length;
  }
  const result: ArchiveQueryResult = { entries: page, complete };
  if (count !== undefined) result.count = count;
  if (firstIndex !== undefined) result.firstIndex = firstIndex;
  return result;
}

/** Words of a search text, as the body's words are cut (letters, digits and what joins them). */
export function searchWords(text: string): string[] {
  return text.split(/\s+/).map((w) => w.trim()).filter((w) => w !== '');
}

/**
 * The SQL condition for an ArchiveMatch. The GIN index on tsv narrows the rows (each word, or the
 * phrase, as lexemes); strpos then checks the exact text and the case, which tsv does not keep.
 */
export function matchCondition(m: ArchiveMatch, language: string, param: (v: unknown) => string): string {
  const words = searchWords(m.text);
  if (words.length === 0) return 'false';
  const lang = `'${language}'`;
  if (m.mode === 'exact') {
    const text = m.text.trim();
    const t = param(text);
    const contains = m.caseSensitive ? `strpos(body, ${t}) > 0` : `strpos(lower(body), lower(${t})) > 0`;
    return `(tsv @@ phraseto_tsquery(${lang}, ${t}) AND ${contains})`;
  }
  const join = m.mode === 'all' ? ' AND ' : ' OR ';
  // One plainto_tsquery per word: a word the parser splits (e-mail, c++) stays one requirement.
  const lexemes = words.map((w) => `plainto_tsquery(${lang}, ${param(w)})`);
  const indexed = `tsv @@ (${lexemes.join(m.mode === 'all' ? ' && ' : ' || ')})`;
  if (!m.caseSensitive) return `(${indexed})`;
  const cased = words.map((w) => `strpos(body, ${param(w)}) > 0`);
  return `(${indexed} AND (${cased.join(join)}))`;
}

function authorsCondition(a: { realJids?: string[]; occupants?: string[] }, param: (v: unknown) => string): string {
  const any: string[] = [];
  if (a.realJids?.length) any.push(`real_jid = ANY(${param(a.realJids)}::text[])`);
  if (a.occupants?.length) any.push(`from_jid = ANY(${param(a.occupants)}::text[])`);
  return any.length ? `(${any.join(' OR ')})` : 'false';
}

/** fulltextLanguage: the PostgreSQL text search configuration of the archive (see setFulltextLanguage). */
export function createSqlStores(db: Db, opts: { fulltextLanguage?: string } = {}): DataStores {
  const fulltextLanguage = checkedLanguage(opts.fulltextLanguage ?? 'simple');
  return {
    db,
    users: createUserStore(db),
    roster: createRosterStore(db),
    offline: createOfflineStore(db),
    userData: createUserDataStore(db),
    rooms: createRoomStore(db),
    archive: createArchiveStore(db, fulltextLanguage),
    directory: createDirectoryStore(db),
    chat: createChatStore(db),
    transfer: createTransferStore(db),
  };
}

/** A text search configuration name, checked because it is written into SQL. */
export function checkedLanguage(name: string): string {
  if (!/^[a-z_]{1,63}$/.test(name)) throw new Error(`invalid full-text language: ${name}`);
  return name;
}
