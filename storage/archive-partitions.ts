// The archive table partitioned by quarter of stamp (docs/scaling.md): the partitioned schema, the
// conversion from the single table (in place for small archives, in batches for large ones),
// partitions created ahead of time, and retention that drops whole partitions a cut-off covers.
import type { Db, DbTx } from './types.js';
import { akeyFilledByTrigger, archiveKeys, KEY_MODE_TTL_MS, readKeyMode } from './archive-keys.js';

type Q = Pick<DbTx, 'query'>;

/** Archives up to this many rows are converted inside the migration; larger ones by partitionArchive. */
export const IN_PLACE_LIMIT = 1_000_000;
/**
 * Months a partition spans. Every query plans over every partition its conditions do not prune (about
 * 40 µs each, measured), and paging by id prunes none: a quarter keeps a decade under 40 partitions.
 */
export const PARTITION_MONTHS = 3;
/** Partitions kept ahead of the current one. */
export const PARTITIONS_AHEAD = 2;
const DEFAULT_PARTITION = 'archive_p_default';
// Arbitrary constant shared by every process creating partitions in the same database.
const PARTITION_LOCK = 7_065_726_370;

// tsv too: a copy between archive tables keeps each row's words (computed once, where they were written).
const COLUMNS = 'id, archive, stanza_id, stamp, from_jid, real_jid, body, stanza, retracted, tsv';

/** The first instant of the partition (UTC, PARTITION_MONTHS months) holding t, plus `add` partitions. */
export function partitionStart(t: Date, add = 0): Date {
  const month = t.getUTCMonth() - (t.getUTCMonth() % PARTITION_MONTHS);
  return new Date(Date.UTC(t.getUTCFullYear(), month + add * PARTITION_MONTHS, 1));
}

/** archive_pYYYYMM for the partition starting at `start`. */
export function partitionName(start: Date): string {
  return `archive_p${start.getUTCFullYear()}${String(start.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** The start a partition name stands for; null for the default partition or another name. */
function partitionMonth(name: string): Date | null {
  const m = /^archive_p(\d{4})(\d{2})$/.exec(name);
  return m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1)) : null;
}

export async function archiveIsPartitioned(db: Q): Promise<boolean> {
  const rows = await db.query<{ kind: string }>(
    `SELECT c.relkind AS kind FROM pg_class c WHERE c.oid = to_regclass('archive')`);
  return rows[0]?.kind === 'p';
}

/**
 * The archive's text search configuration: archive_tsv's (migration 14 on), or the generated tsv
 * column's before; null when the archive has neither.
 */
export async function archiveFulltextLanguage(db: Q): Promise<string | null> {
  const [r] = await db.query<{ expr: string | null; fn: string | null }>(
    `SELECT (SELECT generation_expression FROM information_schema.columns
              WHERE table_schema = current_schema() AND table_name = 'archive' AND column_name = 'tsv') AS expr,
            (SELECT prosrc FROM pg_proc WHERE proname = 'archive_tsv' AND pronamespace = current_schema()::regnamespace) AS fn`);
  const source = r?.expr || r?.fn || '';
  return /'([a-z_]+)'::regconfig/.exec(source)?.[1] ?? null;
}

/**
 * tsv as a column its writers fill, with archive_tsv(body) (the one place the text search
 * configuration is named): the append computes it once per message, where a generated column
 * computed it for each copy (a one-to-one message's two rows: 8 % of PostgreSQL's instructions per
 * message, docs/benchmarks.md). Triggers fill it for any other writer: an insert without it (an
 * import, a node of the version before during a rolling upgrade; the WHEN test costs the append about
 * 600 instructions a row, no function call) and an update of body (a retraction, a rewrite).
 */
export async function tsvFilledByWriters(tx: Q, table: string, language: string): Promise<void> {
  await tx.query(`CREATE OR REPLACE FUNCTION archive_tsv(body text) RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT to_tsvector('${language}'::regconfig, $1) $$`);
  await tx.query(`CREATE OR REPLACE FUNCTION archive_tsv_fill() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN NEW.tsv := archive_tsv(NEW.body); RETURN NEW; END $$`);
  const [generated] = await tx.query(
    `SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'tsv' AND attgenerated <> ''`, [table]);
  if (generated) await tx.query(`ALTER TABLE ${table} ALTER COLUMN tsv DROP EXPRESSION`);
  await tx.query(`DROP TRIGGER IF EXISTS archive_tsv_insert ON ${table}`);
  await tx.query(`CREATE TRIGGER archive_tsv_insert BEFORE INSERT ON ${table} FOR EACH ROW
    WHEN (NEW.tsv IS NULL AND NEW.body IS NOT NULL) EXECUTE FUNCTION archive_tsv_fill()`);
  await tx.query(`DROP TRIGGER IF EXISTS archive_tsv_update ON ${table}`);
  await tx.query(`CREATE TRIGGER archive_tsv_update BEFORE UPDATE OF body ON ${table} FOR EACH ROW
    WHEN (NEW.body IS DISTINCT FROM OLD.body) EXECUTE FUNCTION archive_tsv_fill()`);
}

/**
 * Deduplication off on `table`'s non-unique B-tree indexes (a partition's, or the single table's).
 * Each of them ends in id or a stamp, so no two entries share a key and a full leaf's deduplication
 * pass finds nothing to merge: a tenth of PostgreSQL's instructions per one-to-one message, spent
 * before page splits. Set on each leaf index: PostgreSQL sets no storage parameter on a partitioned one.
 */
async function deduplicationOff(tx: Q, table: string): Promise<void> {
  const rows = await tx.query<{ index: string }>(
    `SELECT c.relname AS index FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
      WHERE i.indrelid = to_regclass($1) AND a.amname = 'btree' AND NOT i.indisunique AND c.relkind = 'i'
        AND NOT COALESCE(c.reloptions, '{}') @> '{deduplicate_items=off}'`, [table]);
  for (const r of rows) await tx.query(`ALTER INDEX ${r.index} SET (deduplicate_items = off)`);
}

/** The archive's tables: its partitions, or the single table not partitioned yet. */
async function archiveTables(tx: Q): Promise<string[]> {
  if (!(await archiveIsPartitioned(tx))) return ['archive'];
  const parts = await tx.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('archive') ORDER BY 1`);
  return parts.map((p) => p.name);
}

/**
 * Migration 14's step: rows cheaper to write. tsv filled by its writers (tsvFilledByWriters) and no
 * deduplication on the B-tree indexes (deduplicationOff). Metadata only, whatever the archive's size:
 * the rows keep their words, and the indexes their pages until their next split.
 */
export async function cheaperArchiveRows(tx: Q): Promise<void> {
  const language = (await archiveFulltextLanguage(tx)) ?? 'simple';
  await tsvFilledByWriters(tx, 'archive', language);
  for (const table of await archiveTables(tx)) await deduplicationOff(tx, table);
}

/**
 * Creates the partitioned archive table under `name` and its default partition; keyed, with the akey
 * column and its trigger (storage/archive-keys.ts). Its indexes (createIndexes, each made on every
 * partition) lead with the archive: its key (akey) once keyed, its JID before. What each serves
 * (docs/scaling.md has the measurements):
 *  - (akey, id): last page, paging by id, and a room's clear;
 *  - (akey, stamp): a start/end window (without it, a scan of the archive's rows of each quarter the
 *    window touches: a day of a million-message room took 4.5 times as long);
 *  - (akey, stanza_id, stamp) unique: RSM and after-id cursors, get, retract, rewrite, import skips
 *    (a unique index must hold the partition column: stanza ids are unique per archive and stamp);
 *  - (akey, from_jid, id), (akey, real_jid, id): `with` and the authors filter, newest first
 *    without sorting every message of that author (a 35,000-message author of a million-message room:
 *    a last page in 0.05 ms instead of 20);
 *  - gin (akey, tsv) (gin (tsv) without btree_gin, see fulltextKey): full text, reading only the
 *    archive's matches; (id): the export's walk in id order and retention's batches (the single
 *    table's primary key; a partitioned one would have to hold stamp too).
 */
async function createPartitioned(tx: Q, name: string, language: string, keyed: boolean): Promise<void> {
  await tx.query(`CREATE TABLE ${name} (
    id bigint NOT NULL DEFAULT nextval('archive_id_seq'),
    archive text NOT NULL,
    stanza_id text NOT NULL,
    stamp timestamptz NOT NULL,
    from_jid text NOT NULL,
    real_jid text,
    body text,
    stanza text NOT NULL,
    retracted boolean NOT NULL DEFAULT false,
    tsv tsvector
  ) PARTITION BY RANGE (stamp)`);
  await tsvFilledByWriters(tx, name, language);
  if (keyed) await akeyFilledByTrigger(tx, name);
  await tx.query(`CREATE TABLE ${DEFAULT_PARTITION}${name === 'archive' ? '' : '_new'} PARTITION OF ${name} DEFAULT`);
}

/**
 * A room's row: its sender is one of the room's occupant JIDs (room@service/nick). An account's rows
 * hold the partner's JID there and are found through real_jid, so the sender index keeps room rows
 * only: a one-to-one message (two rows) skips it, about 9 µs of PostgreSQL CPU and 90-110 bytes a row.
 * Queries repeat it word for word (the planner uses a partial index when the query states its predicate).
 */
export const ROOM_ROW = "starts_with(from_jid, archive || '/')";
/** See deduplicationOff; given here, a partition made later inherits it from its parent's index. */
const NO_DEDUP = 'WITH (deduplicate_items = off)';
/** The sender index as migration 13 made it (the JID leading), and as keyed since migration 16. */
const SENDER_INDEX_BY_JID = `(archive, from_jid, id) ${NO_DEDUP} WHERE ${ROOM_ROW}`;

/** The archive's indexes (see createPartitioned), each leading with the archive's key (migration 16 on) or its JID (before). */
function indexes(keyed: boolean): [string, string][] {
  const k = keyed ? 'akey' : 'archive';
  return [
    ['archive_id', `(id) ${NO_DEDUP}`],
    ['archive_archive_id', `(${k}, id) ${NO_DEDUP}`],
    ['archive_archive_stamp', `(${k}, stamp) ${NO_DEDUP}`],
    ['archive_archive_stanza_id', `(${k}, stanza_id, stamp)`],
    ['archive_archive_from_jid', `(${k}, from_jid, id) ${NO_DEDUP} WHERE ${ROOM_ROW}`],
    ['archive_archive_real_jid', `(${k}, real_jid, id) ${NO_DEDUP}`],
    ['archive_tsv', 'USING gin (tsv)'],
  ];
}

/**
 * The full-text index's columns: (archive, tsv) once btree_gin is installed (a search then reads the
 * matches in its archive, not every match in the table: a word in 1,031 rows of a room and 10,000 of
 * the table, 45 ms of CPU before), else (tsv) alone.
 */
export async function fulltextKey(tx: Q, keyed = false): Promise<string> {
  const rows = await tx.query(`SELECT 1 FROM pg_extension WHERE extname = 'btree_gin'`);
  return rows.length > 0 ? `(${keyed ? 'akey' : 'archive'}, tsv)` : '(tsv)';
}

/**
 * Installs btree_gin (GIN operator classes for text; trusted since PostgreSQL 13, so a database owner
 * may) when this server has it; false where it has not or the role may not (the index then stays on
 * tsv alone, every query unchanged).
 */
export async function installBtreeGin(tx: Q): Promise<boolean> {
  if ((await fulltextKey(tx)) !== '(tsv)') return true;
  const available = await tx.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'btree_gin'`);
  if (available.length === 0) return false;
  // Into public where it may: an extension is one per database, and one made in a Perch schema would
  // go (with every index using it, in any schema) when that schema is dropped.
  const [pub] = await tx.query<{ ok: boolean }>(
    `SELECT has_schema_privilege('public', 'CREATE') AS ok WHERE to_regnamespace('public') IS NOT NULL`);
  await tx.query('SAVEPOINT btree_gin');
  try {
    await tx.query(`CREATE EXTENSION IF NOT EXISTS btree_gin${pub?.ok ? ' SCHEMA public' : ''}`);
    await tx.query('RELEASE SAVEPOINT btree_gin');
    return true;
  } catch {
    await tx.query('ROLLBACK TO SAVEPOINT btree_gin');
    return false;
  }
}

/** The parent's indexes (suffix: beside the old table's, renamed at the swap). */
async function createIndexes(tx: Q, name: string, suffix: string, keyed: boolean): Promise<void> {
  for (const [index, def] of await indexDefinitions(tx, keyed)) {
    await tx.query(`CREATE ${index === 'archive_archive_stanza_id' ? 'UNIQUE ' : ''}INDEX ${index}${suffix} ON ${name} ${def}`);
  }
}

/** The indexes that lead with the archive (all but (id)), keyed, as this database allows. */
async function keyedIndexes(tx: Q): Promise<[string, string][]> {
  return (await indexDefinitions(tx, true)).filter(([index]) => index !== 'archive_id');
}

/** indexes(keyed) with the full-text index's columns as this database allows (fulltextKey). */
async function indexDefinitions(tx: Q, keyed: boolean): Promise<[string, string][]> {
  const gin = `USING gin ${await fulltextKey(tx, keyed)}`;
  return indexes(keyed).map(([index, def]) => [index, index === 'archive_tsv' ? gin : def]);
}

/** Is the archive's index `index` defined as `shape` says already (or is there no such index)? */
async function indexIs(tx: Q, index: string, shape: RegExp): Promise<boolean> {
  const [current] = await tx.query<{ def: string }>(
    'SELECT pg_get_indexdef(to_regclass($1)) AS def WHERE to_regclass($1) IS NOT NULL', [index]);
  return current === undefined || shape.test(current.def);
}

/** Is the full-text index keyed by archive already (or is there no full-text index to key)? */
const fulltextKeyed = (tx: Q) => indexIs(tx, 'archive_tsv', /\((archive|akey), tsv\)/);
/** Does the sender index hold room rows only (or is there no sender index to narrow)? */
const senderIndexNarrowed = (tx: Q) => indexIs(tx, 'archive_archive_from_jid', /starts_with/);

/** Does the archive hold at most IN_PLACE_LIMIT messages (by the kept counts), so a migration may rebuild in its transaction? */
async function smallEnoughInPlace(tx: Q): Promise<boolean> {
  const [r] = await tx.query<{ n: unknown }>('SELECT COALESCE(sum(n), 0) AS n FROM archive_size');
  return Number(r?.n) <= IN_PLACE_LIMIT;
}

/** Builds the archive's index `index` anew as `def` in this transaction (archive_<tag> beside it, then swapped). */
async function rebuildInPlace(tx: Q, index: string, tag: string, def: string): Promise<void> {
  await tx.query(`CREATE INDEX archive_${tag} ON archive ${def}`);
  await tx.query(`DROP INDEX IF EXISTS ${index}`);
  await tx.query(`ALTER INDEX archive_${tag} RENAME TO ${index}`);
}

/**
 * Migration 12's step: the full-text index keyed by archive (btree_gin installed if it can be). An
 * archive of at most IN_PLACE_LIMIT rows is reindexed in this transaction (writers wait while it
 * builds: 103 s for 10 million rows on two busy cores, so a larger one keeps its index, every query
 * unchanged, until `perch archive reindex` (rekeyOnline) builds the keyed one beside it).
 */
export async function keyFulltextByArchive(tx: Q): Promise<void> {
  if (!(await installBtreeGin(tx)) || (await fulltextKeyed(tx)) || !(await smallEnoughInPlace(tx))) return;
  // By the archive's key where the table has its keyed indexes already (`perch archive partition`).
  await rebuildInPlace(tx, 'archive_tsv', 'tsv_keyed', `USING gin ${await fulltextKey(tx, (await readKeyMode(tx)) === 'keyed')}`);
}

/**
 * Migration 13's step: the sender index narrowed to room rows (ROOM_ROW), in this transaction for an
 * archive of at most IN_PLACE_LIMIT rows; a larger one keeps the whole index (every query unchanged)
 * until `perch archive reindex` (rekeyOnline) builds the narrow keyed one beside it.
 */
export async function narrowSenderIndex(tx: Q): Promise<void> {
  if ((await senderIndexNarrowed(tx)) || !(await archiveIsPartitioned(tx)) || !(await smallEnoughInPlace(tx))) return;
  await rebuildInPlace(tx, 'archive_archive_from_jid', 'from_jid_rooms', SENDER_INDEX_BY_JID);
}

/** Rows given their key a statement, by `perch archive reindex` (each its own transaction). */
const REKEY_BATCH = 50_000;

/** Every archive JID the rows hold, given a key (one scan of the table). */
async function keysForEveryArchive(db: Q): Promise<void> {
  await db.query(`INSERT INTO archive_keys (archive) SELECT DISTINCT archive FROM archive ORDER BY 1 ON CONFLICT (archive) DO NOTHING`);
}

/**
 * Migration 16's step: each archive named by an integer (storage/archive-keys.ts). Always: archive_keys,
 * the akey column (metadata only) and its trigger, so every row written from now on has its key. A
 * partitioned archive of at most IN_PLACE_LIMIT rows is then keyed in this transaction: its rows given
 * their keys and its indexes built anew on them. A larger one, or a single table, keeps its indexes on
 * the JID (reads name the JID, every answer unchanged) until `perch archive reindex` (rekeyOnline), or
 * `perch archive partition`, which builds keyed indexes.
 */
export async function keyArchivesInMigration(tx: Q): Promise<void> {
  await akeyFilledByTrigger(tx, 'archive');
  if ((await readKeyMode(tx)) === 'keyed' || !(await archiveIsPartitioned(tx)) || !(await smallEnoughInPlace(tx))) return;
  await keysForEveryArchive(tx);
  // The old indexes first: the update then writes no entry in them. (id) stays as it is.
  const keyed = await keyedIndexes(tx);
  for (const [index] of keyed) await tx.query(`DROP INDEX IF EXISTS ${index}`);
  await tx.query('UPDATE archive a SET akey = k.key FROM archive_keys k WHERE k.archive = a.archive AND a.akey IS NULL');
  for (const [index, def] of keyed) {
    await tx.query(`CREATE ${index === 'archive_archive_stanza_id' ? 'UNIQUE ' : ''}INDEX ${index} ON archive ${def}`);
  }
}

export type ReindexOutcome = 'keyed' | 'already' | 'not-partitioned';

/**
 * The archive keyed beside a running server (for one migration 16 left on the JID): every archive
 * given a key, the rows without one given theirs in id ranges of REKEY_BATCH (rows written meanwhile
 * have theirs), then each keyed index built beside the old one: the parent's made empty (ON ONLY), each
 * partition's built CONCURRENTLY (writers go on) and attached, the (akey, id) index last, as running
 * nodes read its being valid as "keyed" (readKeyMode). Then it waits `grace` (default twice
 * KEY_MODE_TTL_MS) for every node to read by key, and drops the old indexes in one short transaction.
 * Resumable: keyed rows and attached partitions are skipped, an invalid index left by an interrupted
 * build is built again.
 */
export async function rekeyOnline(db: Db, opts: {
  grace?: number;
  onProgress?: (phase: 'keys' | 'indexes', done: number, total: number) => void;
} = {}): Promise<ReindexOutcome> {
  if (!(await archiveIsPartitioned(db))) return 'not-partitioned';
  const mode = await readKeyMode(db);
  const renamed = await db.query(`SELECT 1 FROM pg_class WHERE relname LIKE 'archive\\_k\\_%' AND relkind IN ('I', 'i')`);
  if (mode === 'keyed' && renamed.length === 0) return 'already';
  await db.transaction(async (tx) => {
    await akeyFilledByTrigger(tx, 'archive');
    await installBtreeGin(tx);
  });
  await keysForEveryArchive(db);
  const [span] = await db.query<{ lo: unknown; hi: unknown }>('SELECT min(id) AS lo, max(id) AS hi FROM archive WHERE akey IS NULL');
  if (span?.lo !== null && span?.lo !== undefined) {
    const lo = Number(span.lo), hi = Number(span.hi);
    for (let from = lo; from <= hi; from += REKEY_BATCH) {
      await db.query(`UPDATE archive a SET akey = k.key FROM archive_keys k
        WHERE k.archive = a.archive AND a.akey IS NULL AND a.id >= $1 AND a.id < $2`, [from, from + REKEY_BATCH]);
      opts.onProgress?.('keys', Math.min(hi, from + REKEY_BATCH - 1) - lo + 1, hi - lo + 1);
    }
  }
  // CONCURRENTLY needs other sessions to wait on; PGlite has one connection, so it builds in place.
  const concurrently = db.kind === 'postgres' ? ' CONCURRENTLY' : '';
  const defs = await keyedIndexes(db);
  // (akey, id) last: its being valid is what tells nodes to read by key.
  defs.sort((x, y) => Number(x[0] === 'archive_archive_id') - Number(y[0] === 'archive_archive_id'));
  const parts = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = to_regclass('archive') AND c.relkind = 'r' ORDER BY c.relname`);
  let done = 0;
  for (const [index, def] of defs) {
    const next = index.replace(/^archive_/, 'archive_k_');
    const current = await db.query<{ def: string }>('SELECT pg_get_indexdef(to_regclass($1)) AS def WHERE to_regclass($1) IS NOT NULL', [index]);
    // As wanted already (a run interrupted after its swap began; GIN on (tsv) alone without btree_gin).
    const columns = /\([^)]*\)/.exec(def)![0];
    const asWanted = current[0] && current[0].def.includes(columns) && (!def.includes(' WHERE ') || current[0].def.includes(' WHERE '));
    if (asWanted && !(await db.query('SELECT 1 WHERE to_regclass($1) IS NOT NULL', [next])).length) {
      done += parts.length;
      continue;
    }
    const unique = index === 'archive_archive_stanza_id' ? 'UNIQUE ' : '';
    await db.query(`CREATE ${unique}INDEX IF NOT EXISTS ${next} ON ONLY archive ${def}`);
    for (const p of parts) {
      const attached = await db.query(
        `SELECT 1 FROM pg_inherits ii JOIN pg_index x ON x.indexrelid = ii.inhrelid
          WHERE ii.inhparent = to_regclass($1) AND x.indrelid = to_regclass($2)`, [next, p.name]);
      if (attached.length === 0) {
        const one = `${p.name}_k_${index.replace(/^archive_/, '')}`;
        await db.query(`DROP INDEX${concurrently} IF EXISTS ${one}`);
        await db.query(`CREATE ${unique}INDEX${concurrently} ${one} ON ${p.name} ${def}`);
        await db.query(`ALTER INDEX ${next} ATTACH PARTITION ${one}`);
      }
      opts.onProgress?.('indexes', ++done, parts.length * defs.length);
    }
  }
  archiveKeys(db).invalidate();
  // The embedded database has one owner (the command runs with the server stopped): nobody to wait for.
  await new Promise((r) => setTimeout(r, opts.grace ?? (db.kind === 'postgres' ? 2 * KEY_MODE_TTL_MS : 0)));
  await db.transaction(async (tx) => {
    for (const [index] of defs) {
      const next = index.replace(/^archive_/, 'archive_k_');
      if ((await tx.query('SELECT 1 WHERE to_regclass($1) IS NOT NULL', [next])).length === 0) continue;
      await tx.query(`DROP INDEX IF EXISTS ${index}`);
      await tx.query(`ALTER INDEX ${next} RENAME TO ${index}`);
    }
  });
  return 'keyed';
}

/** The count triggers, made once the rows are in (the copied rows are counted already). */
async function createTriggers(tx: Q, name: string): Promise<void> {
  await tx.query(`CREATE TRIGGER archive_count_insert AFTER INSERT ON ${name} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION archive_count_insert()`);
  await tx.query(`CREATE TRIGGER archive_count_delete AFTER DELETE ON ${name} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION archive_count_delete()`);
  await tx.query(`CREATE TRIGGER archive_count_update AFTER UPDATE ON ${name} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION archive_count_update()`);
  await tx.query(`CREATE TRIGGER archive_count_truncate AFTER TRUNCATE ON ${name} FOR EACH STATEMENT EXECUTE FUNCTION archive_count_truncate()`);
}

/**
 * Rows the default partition may hold for a start to move them into their quarters before it listens:
 * the move is one transaction, 23-37 µs a row on two cores (100,000 rows: 2.5-4 s). More wait where
 * they are, read from there, for `perch archive partitions`, which moves them a quarter at a time.
 */
export const MOVE_AT_START_LIMIT = 100_000;
/** The same for a running server's check: its move holds every archive read and write meanwhile. */
export const MOVE_WHILE_SERVING_LIMIT = 10_000;

/** The default partition's rows, counted up to `cap` + 1 (enough to say "more than cap"). */
export async function defaultPartitionRows(db: Q, cap: number): Promise<number> {
  if (!(await archiveIsPartitioned(db))) return 0;
  const [r] = await db.query<{ n: unknown }>(`SELECT count(*) AS n FROM (SELECT 1 FROM ${DEFAULT_PARTITION} LIMIT $1) s`, [cap + 1]);
  return Number(r?.n ?? 0);
}

/**
 * The partitions of `parent` from the one holding `from` to PARTITIONS_AHEAD after now's, those missing.
 * A quarter the default partition holds rows of is made by moving them (skipStrays: left for later,
 * when they are too many to move here).
 */
async function createPartitions(tx: Q, parent: string, suffix: string, from: Date, now: Date, skipStrays = false): Promise<string[]> {
  const made: string[] = [];
  for (let m = partitionStart(from); m <= partitionStart(now, PARTITIONS_AHEAD); m = partitionStart(m, 1)) {
    const name = partitionName(m) + suffix;
    const exists = await tx.query('SELECT 1 FROM pg_class WHERE oid = to_regclass($1)', [name]);
    if (exists.length > 0) continue;
    const lo = m.toISOString();
    const hi = partitionStart(m, 1).toISOString();
    // Rows the default partition caught for this quarter (a server past its partitions, an import) move
    // in through the parent: their count deltas cancel out.
    const stray = await tx.query(`SELECT 1 FROM ${DEFAULT_PARTITION}${suffix} WHERE stamp >= $1 AND stamp < $2 LIMIT 1`, [lo, hi]);
    if (stray.length > 0 && skipStrays) continue;
    if (stray.length > 0) {
      await tx.query(`CREATE TEMP TABLE archive_moving ON COMMIT DROP AS
        WITH gone AS (DELETE FROM ${parent} WHERE stamp >= '${lo}' AND stamp < '${hi}' RETURNING ${COLUMNS}) SELECT * FROM gone`);
    }
    await tx.query(`CREATE TABLE ${name} PARTITION OF ${parent} FOR VALUES FROM ('${lo}') TO ('${hi}')`);
    // A parent index made before migration 14 passes deduplication on to the partition's.
    await deduplicationOff(tx, name);
    if (stray.length > 0) {
      await tx.query(`INSERT INTO ${parent} (${COLUMNS}) SELECT ${COLUMNS} FROM archive_moving`);
      await tx.query('DROP TABLE archive_moving');
    }
    made.push(name);
  }
  return made;
}

/**
 * Creates the partitions that are missing from the one holding `from` (default: now), or the oldest
 * row the default partition caught (an import of old history, a server past its partitions), to
 * PARTITIONS_AHEAD ahead, and moves the default partition's rows into them; a no-op for an archive
 * not partitioned yet. Run at every start (migrate), twice a day by a running server, and by `perch
 * archive partitions`. With moveAtMost, a default partition holding more rows than that keeps them
 * (every quarter they fall in is left unmade; the rest are made): see MOVE_AT_START_LIMIT.
 */
export async function ensureArchivePartitions(
  db: Db,
  opts: { from?: Date; now?: Date; moveAtMost?: number } = {},
): Promise<string[]> {
  const now = opts.now ?? new Date();
  return db.transaction(async (tx) => {
    if (!(await archiveIsPartitioned(tx))) return [];
    await tx.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK]);
    const tooMany = opts.moveAtMost !== undefined && (await defaultPartitionRows(tx, opts.moveAtMost)) > opts.moveAtMost;
    let from = opts.from ?? now;
    if (!tooMany) {
      const [stray] = await tx.query<{ lo: Date | null }>(`SELECT min(stamp) AS lo FROM ${DEFAULT_PARTITION}`);
      if (stray?.lo && new Date(stray.lo) < from) from = new Date(stray.lo);
    }
    return createPartitions(tx, 'archive', '', from, now, tooMany);
  });
}

/**
 * Moves every row the default partition holds into its quarter's partition (made for it), one quarter
 * a transaction, oldest first: writers wait for one quarter's move at a time, not for all of them.
 * Returns the rows moved (the default partition's count before; writers past the partitions may add more).
 */
export async function moveDefaultPartitionRows(
  db: Db, onQuarter?: (done: number, total: number) => void,
): Promise<{ moved: number; quarters: number }> {
  if (!(await archiveIsPartitioned(db))) return { moved: 0, quarters: 0 };
  const [count] = await db.query<{ n: unknown }>(`SELECT count(*) AS n FROM ${DEFAULT_PARTITION}`);
  const found = await db.query<{ q: Date }>(
    `SELECT DISTINCT date_trunc('quarter', stamp AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS q FROM ${DEFAULT_PARTITION} ORDER BY 1`);
  // Quarters of PARTITION_MONTHS months, whatever date_trunc's quarter.
  const quarters = [...new Set(found.map((r) => partitionStart(new Date(r.q)).getTime()))].sort((a, b) => a - b);
  for (const [i, q] of quarters.entries()) {
    const start = new Date(q);
    // From this quarter to this quarter only: "now" PARTITIONS_AHEAD before it.
    await ensureArchivePartitions(db, { from: start, now: partitionStart(start, -PARTITIONS_AHEAD) });
    onQuarter?.(i + 1, quarters.length);
  }
  return { moved: Number(count?.n ?? 0), quarters: quarters.length };
}

/**
 * The migration's step: converts the single archive table to the partitioned one inside the migration's
 * transaction when it holds at most IN_PLACE_LIMIT rows (by the kept counts); a larger one stays as it
 * is, every query working on it unchanged, until `perch archive partition` (partitionArchive) converts it.
 */
export async function partitionInMigration(tx: Q): Promise<void> {
  if ((await archiveIsPartitioned(tx)) || !(await smallEnoughInPlace(tx))) return;
  await convert(tx, async (target) => {
    await tx.query(`INSERT INTO ${target} (${COLUMNS}) SELECT ${COLUMNS} FROM archive ORDER BY id`);
  });
}

/**
 * Builds archive_new from the old table (fill copies the rows), then swaps it in: the old table and its
 * triggers go, the id sequence carries over, the kept counts stay (the copy runs before the triggers).
 */
async function convert(tx: Q, fill: (target: string) => Promise<void>): Promise<void> {
  const language = (await archiveFulltextLanguage(tx)) ?? 'simple';
  const [span] = await tx.query<{ lo: Date | null }>('SELECT min(stamp) AS lo FROM archive');
  const now = new Date();
  // The schema as migration 11 made it; migration 16 keys it.
  await createPartitioned(tx, 'archive_new', language, false);
  await createPartitions(tx, 'archive_new', '_new', span?.lo ? new Date(span.lo) : now, now);
  await fill('archive_new');
  await finishSwap(tx, false);
}

async function finishSwap(tx: Q, indexed: boolean): Promise<void> {
  await tx.query('ALTER SEQUENCE archive_id_seq OWNED BY NONE');
  await tx.query('DROP TABLE archive');
  await tx.query('ALTER TABLE archive_new RENAME TO archive');
  const parts = await tx.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('archive')`);
  for (const p of parts) await tx.query(`ALTER TABLE ${p.name} RENAME TO ${p.name.replace(/_new$/, '')}`);
  await tx.query('ALTER SEQUENCE archive_id_seq OWNED BY archive.id');
  if (indexed) {
    for (const [index] of indexes(true)) await tx.query(`ALTER INDEX ${index}_new RENAME TO ${index}`);
  } else {
    await createIndexes(tx, 'archive', '', false);
  }
  await createTriggers(tx, 'archive');
}

/**
 * Converts a large single archive table to the partitioned one while the server runs: rows are copied
 * in id order, `batch` a transaction (onProgress after each), into archive_new; the last step, under a
 * lock that holds writers for as long as copying the rows written meanwhile takes, copies those, builds
 * the indexes and swaps the tables. Resumable: a copy interrupted goes on from archive_new's last id.
 */
export async function partitionArchive(db: Db, opts: { batch?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<number> {
  const batch = opts.batch ?? 50_000;
  if (await archiveIsPartitioned(db)) return 0;
  const [{ total }] = await db.query<{ total: unknown }>('SELECT COALESCE(sum(n), 0) AS total FROM archive_size') as [{ total: unknown }];
  const exists = await db.query(`SELECT 1 FROM pg_class WHERE oid = to_regclass('archive_new')`);
  if (exists.length === 0) {
    await db.transaction(async (tx) => {
      const language = (await archiveFulltextLanguage(tx)) ?? 'simple';
      const [span] = await tx.query<{ lo: Date | null }>('SELECT min(stamp) AS lo FROM archive');
      const now = new Date();
      // Keyed (the current schema): the copy leaves akey out, and the trigger gives each row its key.
      await createPartitioned(tx, 'archive_new', language, true);
      await createPartitions(tx, 'archive_new', '_new', span?.lo ? new Date(span.lo) : now, now);
      // Indexed before the copy, so the final step under the lock builds nothing.
      await createIndexes(tx, 'archive_new', '_new', true);
      // Rows rewritten or deleted in the old table meanwhile are noted, and copied again at the end.
      await tx.query('CREATE TABLE archive_changed (id bigint NOT NULL)');
      await tx.query(`CREATE FUNCTION archive_note_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO archive_changed SELECT id FROM old_rows; RETURN NULL; END $$`);
      await tx.query('CREATE TRIGGER archive_note_update AFTER UPDATE ON archive REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION archive_note_changed()');
      await tx.query('CREATE TRIGGER archive_note_delete AFTER DELETE ON archive REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION archive_note_changed()');
    });
  }
  const [{ last, done }] = await db.query<{ last: unknown; done: unknown }>(
    'SELECT COALESCE(max(id), 0) AS last, count(*) AS done FROM archive_new') as [{ last: unknown; done: unknown }];
  let after = Number(last);
  let copied = Number(done);
  opts.onProgress?.(copied, Number(total));
  for (;;) {
    const rows = await db.query<{ n: unknown; hi: unknown }>(
      `WITH moved AS (INSERT INTO archive_new (${COLUMNS})
         SELECT ${COLUMNS} FROM archive WHERE id > $1 ORDER BY id LIMIT $2 RETURNING id)
       SELECT count(*) AS n, max(id) AS hi FROM moved`, [after, batch]);
    const n = Number(rows[0]?.n ?? 0);
    if (n === 0) break;
    copied += n;
    after = Number(rows[0]?.hi);
    opts.onProgress?.(copied, Math.max(copied, Number(total)));
    if (n < batch) break;
  }
  // Rows retracted, rewritten or deleted since they were copied are copied again (or not), with the remainder.
  await db.transaction(async (tx) => {
    await tx.query('LOCK TABLE archive IN EXCLUSIVE MODE');
    await tx.query('DELETE FROM archive_new WHERE id IN (SELECT id FROM archive_changed) AND id <= $1', [after]);
    await tx.query(`INSERT INTO archive_new (${COLUMNS}) SELECT ${COLUMNS} FROM archive
      WHERE id IN (SELECT id FROM archive_changed) AND id <= $1`, [after]);
    await tx.query(`INSERT INTO archive_new (${COLUMNS}) SELECT ${COLUMNS} FROM archive WHERE id > $1`, [after]);
    await tx.query('DROP TABLE archive_changed');
    await finishSwap(tx, true);
    await tx.query('DROP FUNCTION archive_note_changed()');
  });
  archiveKeys(db).invalidate();
  return copied;
}

export interface ExpiryResult { dropped: string[]; deleted: number }

/**
 * Retention: removes every archived message stamped before `cutoff`. Whole partitions the cut-off
 * covers are dropped (their counts taken off first, from one scan of each); the rest (the month the
 * cut-off falls in, the default partition, or an archive not partitioned yet) is deleted in batches of
 * `batch` ids, each its own statement.
 */
export async function expireArchive(db: Db, cutoff: Date, opts: { batch?: number } = {}): Promise<ExpiryResult> {
  const batch = opts.batch ?? 10_000;
  const dropped: string[] = [];
  if (await archiveIsPartitioned(db)) {
    for (const name of await archiveTables(db)) {
      const month = partitionMonth(name);
      if (!month || partitionStart(month, 1) > cutoff) continue;
      await db.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK]);
        await tx.query(`INSERT INTO archive_count_delta (archive, n, bytes)
          SELECT archive, -count(*), -sum(octet_length(stanza)) FROM ${name} GROUP BY archive`);
        await tx.query(`ALTER TABLE archive DETACH PARTITION ${name}`);
        await tx.query(`DROP TABLE ${name}`);
      });
      dropped.push(name);
    }
  }
  // The remainder, walked in id ranges through the id index (no stamp index needed).
  let deleted = 0;
  const [span] = await db.query<{ lo: unknown; hi: unknown }>(
    'SELECT min(id) AS lo, max(id) AS hi FROM archive WHERE stamp < $1', [cutoff.toISOString()]);
  if (span?.lo !== null && span?.lo !== undefined) {
    for (let from = Number(span.lo); from <= Number(span.hi); from += batch) {
      const [r] = await db.query<{ n: unknown }>(
        `WITH gone AS (DELETE FROM archive WHERE stamp < $1 AND id >= $2 AND id < $3 RETURNING 1) SELECT count(*) AS n FROM gone`,
        [cutoff.toISOString(), from, from + batch]);
      deleted += Number(r?.n ?? 0);
    }
  }
  return { dropped, deleted };
}
