import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { openPglite } from './db-pglite.js';
import { openPostgres } from './db-postgres.js';
import { migrate, setFulltextLanguage } from './migrations.js';
import { MemorySessionStore } from './session-memory.js';
import { RedisSessionStore } from './session-redis.js';
import { createSqlStores } from './sql-stores.js';
import type { DataStores, Db, SessionStore } from './types.js';

/** PostgreSQL when databaseUrl is set, else PGlite under <dataDir>/pglite (in memory without dataDir). */
export async function openDataStores(opts: {
  databaseUrl: string | null;
  dataDir: string | null;
  onMigrationProgress?: (done: number, total: number, name: string) => void;
  /** Text search configuration of the archive's full-text index (default 'simple'). */
  fulltextLanguage?: string;
  onFulltextRebuild?: (from: string, to: string) => void;
  /** Rows the default partition may hold for the migration to move them (default MOVE_AT_START_LIMIT). */
  moveStrayRowsAtMost?: number;
}): Promise<DataStores> {
  let db: Db;
  if (opts.databaseUrl) {
    db = await openPostgres(opts.databaseUrl);
  } else if (opts.dataDir) {
    const dir = join(opts.dataDir, 'pglite');
    await mkdir(dir, { recursive: true });
    db = await openPglite(dir);
  } else {
    db = await openPglite(null);
  }
  try {
    await migrate(db, opts.onMigrationProgress, undefined, opts.moveStrayRowsAtMost);
    if (opts.fulltextLanguage !== undefined) await setFulltextLanguage(db, opts.fulltextLanguage, opts.onFulltextRebuild);
  } catch (err) {
    await db.close().catch(() => {});
    throw err;
  }
  return createSqlStores(db, { fulltextLanguage: opts.fulltextLanguage });
}

/** Redis when redisUrl is set (one server, Sentinel or Cluster: storage/redis-connection.ts), else single-node memory. Returned started. */
export async function openSessionStore(opts: { redisUrl: string | null; nodeId: string }): Promise<SessionStore> {
  const store = opts.redisUrl
    ? new RedisSessionStore({ url: opts.redisUrl, nodeId: opts.nodeId })
    : new MemorySessionStore(opts.nodeId);
  await store.start();
  return store;
}
