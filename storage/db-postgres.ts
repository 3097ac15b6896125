import pg from 'pg';
import type { Db, DbTx } from './types.js';

const IDENT = /^[a-z_][a-z0-9_]*$/;
const MAX_PREPARED = 500;
/**
 * random_page_cost as for SSDs and cached data (the default, 4, prices a random read as a disk
 * seek): with it, a full-text search for a rare word uses the GIN index instead of walking the
 * whole archive backwards (17 ms → 4 ms for 1 message in 1,000 of a million-message room).
 * jit off: a plan's estimated cost decides whether PostgreSQL compiles it, and a planned-once page
 * (LIMIT a parameter, priced as a tenth of the archive) of a ten-million-message room crossed the
 * line: 16 ms compiling a read that takes 0.06 (bench/mam-jit-ab.mjs). No read of ours runs long
 * enough to win the compile back.
 */
export const PLANNER_OPTIONS = '-c random_page_cost=1.1 -c jit=off';

/**
 * Connections in a server's pool. The archive writer's lanes (src/archive-writer.ts) each hold one
 * while a batch commits; the rest serve queries, logins and the other stores.
 */
export const POSTGRES_POOL_SIZE = 10;
/** Connections for the queries planned once (Db.queryPlannedOnce): short reads, next to the pool's. */
export const PLANNED_ONCE_POOL_SIZE = 3;

/** An INSERT, alone or after its CTEs: a write, whose one plan suits every value. */
const WRITE_STATEMENT = /^\s*(?:INSERT\b|WITH\b[\s\S]*?\)\s*INSERT\b)/i;

/**
 * PostgreSQL through a pg.Pool. `schema` (tests, multi-tenant set-ups) is created when missing and
 * put on every pooled connection's search_path via the startup `options` parameter, with the
 * planner settings below.
 */
export async function openPostgres(url: string, opts: { schema?: string } = {}): Promise<Db> {
  const { schema } = opts;
  if (schema !== undefined && !IDENT.test(schema)) throw new Error(`invalid schema name: ${schema}`);
  // Connections stay open once opened (pg.Pool's default closes one idle for 10 s): the first read
  // after a quiet spell waited for new backends and ran on their cold catalog caches, a last page of
  // 50 taking 12 ms where it takes 0.7 warm (bench/pg-quiet.mjs). Both pools are small; TCP keepalive
  // finds a connection a dead peer or a NAT dropped before a query does.
  const kept = { idleTimeoutMillis: 0, keepAlive: true };
  const pool = new pg.Pool({
    ...kept,
    connectionString: url,
    max: POSTGRES_POOL_SIZE,
    application_name: 'perch',
    options: `${PLANNER_OPTIONS}${schema ? ` -c search_path=${schema}` : ''}`,
  });
  // A few connections for queryPlannedOnce: each statement prepared there runs on its generic plan
  // from the first call (the session's plan_cache_mode), where the default would plan it anew at each
  // of them. Planning is most of a partitioned archive's page in id order: every partition's indexes
  // are weighed (0.7 of 0.8 ms for the rows of a last page of 50 at a million messages).
  const plannedOnce = new pg.Pool({
    ...kept,
    connectionString: url,
    max: PLANNED_ONCE_POOL_SIZE,
    application_name: 'perch',
    options: `${PLANNER_OPTIONS} -c plan_cache_mode=force_generic_plan${schema ? ` -c search_path=${schema}` : ''}`,
  });
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => {});
  plannedOnce.on('error', () => {});
  try {
    if (schema) await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    else await pool.query('SELECT 1');
  } catch (err) {
    await Promise.all([pool.end().catch(() => {}), plannedOnce.end().catch(() => {})]);
    throw err;
  }

  // INSERT statements get a name, so each pooled connection parses and plans them once (a prepared
  // statement): about 0.2 ms off the one-row archive INSERT a room message waits for. So do those
  // led by data-modifying CTEs (WITH … ) INSERT): the append that carries compliance events, which
  // parsed and planned afresh cost PostgreSQL 0.9 ms of CPU a room message against 0.5 prepared.
  // Queries stay unnamed: a prepared query may switch to a generic plan, which on skewed archives
  // (one sender with a few percent of a million messages, a common word) was measured 10–20 times
  // slower. Those whose one plan suits every value ask for it (queryPlannedOnce); the lookups by
  // account every login makes ask to be prepared (queryPrepared).
  // One name per statement text (a name is per connection, so both pools share them), up to MAX_PREPARED.
  const names = new Map<string, string>();
  const nameOf = (text: string): string | undefined => {
    let name = names.get(text);
    if (name === undefined && names.size < MAX_PREPARED) names.set(text, (name = `perch_${names.size}`));
    return name;
  };
  /** A statement named (prepared once a connection) when `prepare`: by default, a write. */
  const named = (text: string, values: unknown[], prepare = WRITE_STATEMENT.test(text)): pg.QueryConfig => {
    const name = prepare ? nameOf(text) : undefined;
    return name === undefined ? { text, values } : { name, text, values };
  };

  /** A client's queries one after the other (pg deprecates a query sent while one runs). */
  const serial = (client: pg.PoolClient) => {
    let tail: Promise<unknown> = Promise.resolve();
    return async <T>(config: pg.QueryConfig): Promise<T[]> => {
      const result = tail.then(() => client.query(config));
      tail = result.catch(() => undefined);
      return (await result).rows as T[];
    };
  };
  /** A Db on one connection of each pool: what warm() hands its reads. */
  const bound = (run: ReturnType<typeof serial>, runOnce: ReturnType<typeof serial>): Db => ({
    kind: 'postgres',
    query: <T>(sql: string, params: readonly unknown[] = []) => run<T>(named(sql, [...params])),
    queryPlannedOnce<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
      const name = nameOf(sql);
      return name === undefined ? run<T>({ text: sql, values: [...params] }) : runOnce<T>({ name, text: sql, values: [...params] });
    },
    queryPrepared: <T>(sql: string, params: readonly unknown[] = []) => run<T>(named(sql, [...params], true)),
    transaction: () => Promise.reject(new Error('warm-up reads run no transaction')),
    warm: () => Promise.reject(new Error('already warming')),
    close: async () => {},
  });
  /** Every connection a pool may hold, opened at once (each connect() waiting opens one). */
  const fill = async (p: pg.Pool, n: number): Promise<pg.PoolClient[]> => {
    const got = await Promise.allSettled(Array.from({ length: n }, () => p.connect()));
    const clients = got.flatMap((g) => (g.status === 'fulfilled' ? [g.value] : []));
    const failed = got.find((g): g is PromiseRejectedResult => g.status === 'rejected');
    if (failed) {
      for (const c of clients) c.release();
      throw failed.reason;
    }
    return clients;
  };

  let closed: Promise<void> | null = null;
  return {
    kind: 'postgres',
    async query<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
      return (await pool.query(named(sql, [...params]))).rows as T[];
    },
    async queryPlannedOnce<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
      const name = nameOf(sql);
      return (await (name === undefined ? pool.query(sql, [...params]) : plannedOnce.query({ name, text: sql, values: [...params] }))).rows as T[];
    },
    async queryPrepared<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
      return (await pool.query(named(sql, [...params], true))).rows as T[];
    },
    async transaction<R>(fn: (tx: DbTx) => Promise<R>): Promise<R> {
      const client = await pool.connect();
      const tx: DbTx = {
        async query<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
          return (await client.query(sql, [...params])).rows as T[];
        },
      };
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          // A connection that cannot roll back is discarded rather than returned to the pool.
          broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
        }
        throw err;
      } finally {
        client.release(broken);
      }
    },
    async warm(reads) {
      const main = await fill(pool, POSTGRES_POOL_SIZE);
      let once: pg.PoolClient[] = [];
      try {
        once = await fill(plannedOnce, PLANNED_ONCE_POOL_SIZE);
        // Each connection of the pool with one of the planned-once ones (those in turn): every
        // backend loads its catalog caches and every planned-once connection prepares its statements.
        const onceRuns = once.map(serial);
        // Settled, all of them, before any connection goes back to its pool with a read still on it.
        const done = await Promise.allSettled(main.map((client, i) => reads(bound(serial(client), onceRuns[i % onceRuns.length]!))));
        const failed = done.find((d): d is PromiseRejectedResult => d.status === 'rejected');
        if (failed) throw failed.reason;
      } finally {
        // Released, not ended: the pools keep them (idleTimeoutMillis 0).
        for (const c of [...main, ...once]) c.release();
      }
      return main.length + once.length;
    },
    close(): Promise<void> {
      closed ??= Promise.all([pool.end(), plannedOnce.end()]).then(() => {});
      return closed;
    },
  };
}
