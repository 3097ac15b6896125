import { PGlite } from '@electric-sql/pglite';
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
  const pg = await PGlite.create(dataDir ?? undefined);
  // The same planner cost model as on PostgreSQL (see PLANNER_OPTIONS in db-postgres.ts).
  await pg.query('SET random_page_cost = 1.1');
  const lock = new Mutex();
  let closed: Promise<void> | null = null;
  return {
    kind: 'pglite',
    query<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
      return lock.run(async () => (await pg.query<T>(sql, [...params])).rows);
    },
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
    close(): Promise<void> {
      closed ??= lock.run(() => pg.close());
      return closed;
    },
  };
}
