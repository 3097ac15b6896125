// The real services the storage tests run against, and a probe for each (CI fails when one is down).
import { Redis } from 'ioredis';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { openPglite } from '../storage/db-pglite.js';
import { openPostgres } from '../storage/db-postgres.js';
import type { Db } from '../storage/types.js';

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';

export async function probePostgres(): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => {});
  }
}

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export function redisClient(): Redis {
  return new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 3000 });
}

export async function probeRedis(): Promise<void> {
  const r = redisClient();
  r.on('error', () => {});
  try {
    await r.connect();
    await r.ping();
  } finally {
    r.disconnect();
  }
}

/**
 * The SQL backends a storage test runs on: embedded PGlite in memory, and PostgreSQL in a schema of
 * its own (open rejects with skip set when PostgreSQL is down, except under CI=true).
 */
export const sqlBackends: { name: string; open(): Promise<{ db: Db; dispose(): Promise<void> }> }[] = [
  { name: 'PGlite (memory)', async open() { const db = await openPglite(null); return { db, dispose: () => db.close() }; } },
  {
    name: 'PostgreSQL',
    async open() {
      try {
        await probePostgres();
      } catch (e) {
        if (process.env.CI === 'true') throw e;
        return Promise.reject(Object.assign(new Error(`PostgreSQL unreachable: ${(e as Error).message}`), { skip: true }));
      }
      const schema = `perch_test_${randomBytes(4).toString('hex')}`;
      const db = await openPostgres(DATABASE_URL, { schema });
      return { db, async dispose() { await db.query(`DROP SCHEMA ${schema} CASCADE`); await db.close(); } };
    },
  },
];

const probes = new Map<string, Promise<void>>();
/** Skips the suite when a service is down, or fails it when running in CI (each service probed once). */
export async function requireService(ctx: Mocha.Context, name: string, url: string, probe: () => Promise<void>): Promise<void> {
  if (!probes.has(name)) probes.set(name, probe());
  try {
    await probes.get(name);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    if (process.env.CI === 'true') throw new Error(`${name} at ${url} is required in CI but unreachable: ${why}`);
    console.warn(`    ${name} at ${url} unreachable (${why}): skipping its suites`);
    ctx.skip();
  }
}
