import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { btree_gin } from '@electric-sql/pglite/contrib/btree_gin';
import type { Db, DbTx } from './types.js';

/** FIFO async lock: PGlite has one connection, so a transaction must own it until COMMIT. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/**
 * Embedded PostgreSQL (WASM). dataDir null = in memory. Calling db.query from inside a
 * db.transaction callback deadlocks: use the tx handle there.
 */
export async function openPglite(dataDir: string | null): Promise<Db> {
  if (dataDir !== null) await initialiseOnce(dataDir);
  // btree_gin: the full-text index keyed by archive (storage/archive-partitions.ts, fulltextKey).
  const pg = await PGlite.create(dataDir ?? undefined, { extensions: { btree_gin } });
  // The same planner cost model as on PostgreSQL (see PLANNER_OPTIONS in db-postgres.ts).
  await pg.query('SET random_page_cost = 1.1');
  const lock = new Mutex();
  let closed: Promise<void> | null = null;
  const query = <T>(sql: string, params: readonly unknown[] = []): Promise<T[]> =>
    lock.run(async () => (await pg.query<T>(sql, [...params])).rows);
  const db: Db = {
    kind: 'pglite',
    query,
    // Planned at each call, as any other: the embedded store serves a small server on one connection.
    queryPlannedOnce: query,
    queryPrepared: query,
    transaction<R>(fn: (tx: DbTx) => Promise<R>): Promise<R> {
      return lock.run(() =>
        pg.transaction((t) =>
          fn({
            async query<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
              return (await t.query<T>(sql, [...params])).rows;
            },
          }),
        ),
      );
    },
    // One connection: the reads once, on it.
    async warm(reads) {
      await reads(db);
      return 1;
    },
    close(): Promise<void> {
      closed ??= lock.run(() => pg.close());
      return closed;
    },
  };
  return db;
}

/**
 * PGlite takes a directory holding PG_VERSION for a finished database and runs initdb into any
 * other, writing PG_VERSION early: a process killed during initdb left a directory PGlite then took
 * for a database and could not open. So a new database is initialised beside its place and moved
 * there (one rename) only once initdb has finished.
 */
async function initialiseOnce(dataDir: string): Promise<void> {
  if (existsSync(join(dataDir, 'PG_VERSION'))) return;
  const staging = `${dataDir}.init`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(dirname(staging), { recursive: true });
  const pg = await PGlite.create(staging);
  await pg.close();
  // What is at dataDir has no PG_VERSION: an empty directory, or an initdb that never finished.
  await rm(dataDir, { recursive: true, force: true });
  await rename(staging, dataDir);
}
