import { KeyBatcher } from './batch.js';
import type {
  DataStores,
  Db,
  OfflineMessage,
  OfflineStore,
  Roster,
  RosterItem,
  RosterStore,
  StoredCredentials,
  Subscription,
  UserDataStore,
  UserRecord,
  UserStore,
} from './types.js';

// pg returns bytea as Buffer, PGlite as Uint8Array.
function toBuffer(v: unknown): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError('expected bytea');
}

// int8/bigint arrive as string (pg) or number/bigint (PGlite); every value here fits a double.
const num = (v: unknown): number => Number(v);

// Byte-order sorting so both backends agree regardless of the database's default collation.
const C = 'COLLATE "C"';

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

interface UserRow {
  username: string;
  disabled: boolean;
  created_at: Date;
  sha1_salt: unknown;
  sha1_iterations: number;
  sha1_stored_key: unknown;
  sha1_server_key: unknown;
  sha256_salt: unknown;
  sha256_iterations: number;
  sha256_stored_key: unknown;
  sha256_server_key: unknown;
}

function credentialParams(c: StoredCredentials): unknown[] {
  return [
    c.sha1.salt, c.sha1.iterations, c.sha1.storedKey, c.sha1.serverKey,
    c.sha256.salt, c.sha256.iterations, c.sha256.storedKey, c.sha256.serverKey,
  ];
}

function toUserRecord(r: UserRow): UserRecord {
  return {
    username: r.username,
    disabled: r.disabled,
    createdAt: new Date(r.created_at),
    credentials: {
      sha1: {
        salt: toBuffer(r.sha1_salt),
        iterations: r.sha1_iterations,
        storedKey: toBuffer(r.sha1_stored_key),
        serverKey: toBuffer(r.sha1_server_key),
      },
      sha256: {
        salt: toBuffer(r.sha256_salt),
        iterations: r.sha256_iterations,
        storedKey: toBuffer(r.sha256_stored_key),
        serverKey: toBuffer(r.sha256_server_key),
      },
    },
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

export function createSqlStores(db: Db): DataStores {
  return {
    db,
    users: createUserStore(db),
    roster: createRosterStore(db),
    offline: createOfflineStore(db),
    userData: createUserDataStore(db),
  };
}
