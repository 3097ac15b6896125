// Each archive named by an integer (docs/scaling.md, "The archive named by an integer"): archive_keys
// holds one row per archive JID, the archive's rows carry its key in akey, and every index leads with
// akey instead of the JID (compared as integers, not as text under the database's collation: 0.77× of
// PostgreSQL's instructions per appended row). The rows keep their JID for what reads it (export,
// counts, the sender index's predicate).
import type { Db } from './types.js';

type Q = Pick<Db, 'query'>;

/**
 * How this database's archive is read and written, as far as akey goes:
 *  - 'none': no akey column (a schema before migration 16; tests and benchmarks of older schemas);
 *  - 'filling': akey is there and writers fill it, but the indexes still lead with the JID (an archive
 *    over a million rows at migration 16, until `perch archive reindex`), so reads name the JID;
 *  - 'keyed': the indexes lead with akey, every row has one, and reads name the key.
 * Reads and writes are right in any mode whatever the schema has become meanwhile (a row written
 * without akey gets it from a trigger; the JID stays in every row), so a mode a node holds a while
 * after a migration or a reindex costs speed, never an answer.
 */
export type ArchiveKeyMode = 'none' | 'filling' | 'keyed';

/** How long a node keeps its reading of the mode before looking again (a reindex waits twice this). */
export const KEY_MODE_TTL_MS = 30_000;

/** A key no archive has (keys start at 1): a read of an archive never written finds nothing. */
export const NO_KEY = 0;

export interface ArchiveKeys {
  mode(): Promise<ArchiveKeyMode>;
  /** The archive's key, or NO_KEY when it has none yet (not remembered: another node may make it). */
  key(archive: string): Promise<number>;
  /** Keys of these archives, made where missing (in a statement of its own, before the batch that needs them). */
  ensure(archives: Iterable<string>): Promise<Map<string, number>>;
  /** Keys of these archives that have one. */
  known(archives: readonly string[]): Promise<Map<string, number>>;
  /** Forget the mode read (a migration or a reindex in this process). */
  invalidate(): void;
}

/** The mode as the catalog says: the akey column, and a valid index on (akey, id). */
export async function readKeyMode(db: Q): Promise<ArchiveKeyMode> {
  const [r] = await db.query<{ col: boolean; idx: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('archive') AND attname = 'akey' AND NOT attisdropped) AS col,
            EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = to_regclass('archive') AND i.indisvalid
                      AND pg_get_indexdef(i.indexrelid) LIKE '%(akey, id)%') AS idx`);
  if (!r?.col) return 'none';
  return r.idx ? 'keyed' : 'filling';
}

// One per database handle: the stores of a node share its keys. A key never changes once made, and no
// row of archive_keys is deleted (an archive cleared or removed keeps its key), so a key remembered is
// never another archive's.
const perDb = new WeakMap<object, ArchiveKeys>();

/** Archives whose keys are remembered at most; past it the memory starts again (a miss costs one read). */
const REMEMBERED = 200_000;

export function archiveKeys(db: Db): ArchiveKeys {
  const existing = perDb.get(db);
  if (existing) return existing;
  const keys = new Map<string, number>();
  let modeRead: { at: number; mode: Promise<ArchiveKeyMode> } | null = null;
  const remember = (archive: string, key: number) => {
    if (keys.size >= REMEMBERED) keys.clear();
    keys.set(archive, key);
  };
  async function known(archives: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const missing: string[] = [];
    for (const a of archives) {
      const k = keys.get(a);
      if (k === undefined) missing.push(a);
      else out.set(a, k);
    }
    if (missing.length > 0) {
      const rows = await db.query<{ key: number; archive: string }>(
        'SELECT key, archive FROM archive_keys WHERE archive = ANY($1::text[])', [missing]);
      for (const r of rows) {
        remember(r.archive, Number(r.key));
        out.set(r.archive, Number(r.key));
      }
    }
    return out;
  }
  const api: ArchiveKeys = {
    mode() {
      const now = Date.now();
      if (!modeRead || now - modeRead.at > KEY_MODE_TTL_MS) {
        const read = readKeyMode(db);
        modeRead = { at: now, mode: read };
        // A failed read is not kept.
        read.catch(() => { if (modeRead?.mode === read) modeRead = null; });
      }
      return modeRead.mode;
    },
    async key(archive) {
      return (await known([archive])).get(archive) ?? NO_KEY;
    },
    known,
    async ensure(archives) {
      const wanted = [...new Set(archives)];
      const out = await known(wanted);
      const missing = wanted.filter((a) => !out.has(a)).sort();
      if (missing.length > 0) {
        // DO UPDATE (not NOTHING) returns the key another writer made meanwhile too; sorted, so two
        // writers making overlapping keys lock them in the same order.
        const rows = await db.query<{ key: number; archive: string }>(
          `INSERT INTO archive_keys (archive) SELECT unnest($1::text[])
           ON CONFLICT (archive) DO UPDATE SET archive = EXCLUDED.archive RETURNING key, archive`, [missing]);
        for (const r of rows) {
          remember(r.archive, Number(r.key));
          out.set(r.archive, Number(r.key));
        }
      }
      return out;
    },
    invalidate() {
      modeRead = null;
    },
  };
  perDb.set(db, api);
  return api;
}

/**
 * archive_keys, the akey column and the trigger that fills it for a writer that leaves it out (an
 * import, a copy between archive tables, a node of the version before during a rolling upgrade). The
 * server's own writer names the key, so the trigger's WHEN skips it (no function call).
 */
export async function akeyFilledByTrigger(tx: Q, table: string): Promise<void> {
  await tx.query(`CREATE TABLE IF NOT EXISTS archive_keys (
    key integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    archive text NOT NULL UNIQUE
  )`);
  await tx.query(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS akey integer`);
  await tx.query(`CREATE OR REPLACE FUNCTION archive_key_fill() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      SELECT key INTO NEW.akey FROM archive_keys WHERE archive = NEW.archive;
      IF NEW.akey IS NULL THEN
        INSERT INTO archive_keys (archive) VALUES (NEW.archive)
          ON CONFLICT (archive) DO UPDATE SET archive = EXCLUDED.archive RETURNING key INTO NEW.akey;
      END IF;
      RETURN NEW;
    END $$`);
  await tx.query(`DROP TRIGGER IF EXISTS archive_key_insert ON ${table}`);
  await tx.query(`CREATE TRIGGER archive_key_insert BEFORE INSERT ON ${table} FOR EACH ROW
    WHEN (NEW.akey IS NULL) EXECUTE FUNCTION archive_key_fill()`);
}
