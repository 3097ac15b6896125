// The benchmark runners' resource accounting (bench/resources.mjs), on a real private redis-server and the
// real PostgreSQL: a server's cost per operation counts its storage's CPU, so that CPU must be seen.
// Skips when a service is missing, except in CI where it fails.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { DATABASE_URL, probePostgres } from './services.js';

interface StorageCpu { db_cpu_s: number | null; redis_cpu_s: number | null }
interface Resources { wall_s: number; server_cpu_pct?: number | null; other_cpu_pct: number | null; db_cpu_pct?: number | null; redis_cpu_pct?: number | null }
interface ResourcesModule {
  PrivateRedis: new (port: number, dir: string) => { url: string; port: number; start(): Promise<unknown>; stop(): Promise<void> };
  StorageMeter: new (o: { dbName?: string | null; redisPort?: number | null }) => { start(): { stop(): StorageCpu } };
  redisCpuSec(port: number): number | null;
  pgBackendPids(db: string): number[];
  chargeStorage(r: Resources, s: StorageCpu): Resources;
  cpuPerOp(r: Resources, ops: number, unit?: number): { total: number; server: number; db: number; redis: number } | null;
  measureQuietest(once: () => Promise<{ resources?: Resources; error?: string; n?: number }>, o: object): Promise<{ n?: number; attempts: number; other_cpu_by_attempt: (number | null)[]; failed_attempts: string[] }>;
  histogramFromMetrics(text: string, name: string): { n: number; mean_ms: number; p50_le_ms: number | null; p99_le_ms: number | null } | null;
}

const BENCH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench');
const load = async (): Promise<ResourcesModule> => (await import(pathToFileURL(path.join(BENCH, 'resources.mjs')).href)) as ResourcesModule;
// a port of the benchmarks' own range, away from the runners' defaults
const REDIS_PORT = Number(process.env.PERCH_TEST_PRIVATE_REDIS_PORT ?? 36990);

function missing(ctx: Mocha.Context, what: string, why: string): void {
  if (process.env.CI === 'true') throw new Error(`${what} is required in CI: ${why}`);
  console.warn(`    ${what} unavailable (${why}): skipping`);
  ctx.skip();
}

describe('benchmark resource accounting (bench/resources.mjs)', () => {
  it('charges storage CPU to the server and takes it out of "other"', async () => {
    const R = await load();
    const r = R.chargeStorage({ wall_s: 2, server_cpu_pct: 40, other_cpu_pct: 50 }, { db_cpu_s: 0.2, redis_cpu_s: 0.1 });
    expect(r.db_cpu_pct).to.equal(10);
    expect(r.redis_cpu_pct).to.equal(5);
    expect(r.other_cpu_pct).to.equal(35);
    // 2 s × (40 + 10 + 5)% = 1.1 CPU-seconds over 1,000 operations: 1.1 ms each
    const per = R.cpuPerOp(r, 1000);
    expect(per?.total).to.be.closeTo(1.1, 1e-9);
    expect(per?.db).to.be.closeTo(0.2, 1e-9);
  });

  it('reads a histogram from a metrics exposition', async () => {
    const R = await load();
    const text = ['# TYPE perch_archive_commit_seconds histogram',
      'perch_archive_commit_seconds_bucket{le="0.001"} 50', 'perch_archive_commit_seconds_bucket{le="0.005"} 98',
      'perch_archive_commit_seconds_bucket{le="0.01"} 100', 'perch_archive_commit_seconds_bucket{le="+Inf"} 100',
      'perch_archive_commit_seconds_sum 0.2', 'perch_archive_commit_seconds_count 100'].join('\n');
    expect(R.histogramFromMetrics(text, 'perch_archive_commit_seconds')).to.deep.equal({ n: 100, mean_ms: 2, p50_le_ms: 1, p99_le_ms: 10, p99_ms: 7.5 });
    expect(R.histogramFromMetrics(text, 'perch_muc_commit_seconds')).to.equal(null);
  });

  it('keeps the quietest of the attempts of a noisy case', async function () {
    this.timeout(30000);
    const R = await load();
    const noise = [60, 30, 45];
    let i = 0;
    const best = await R.measureQuietest(async () => { const n = i++; return { n, resources: { wall_s: 1, other_cpu_pct: noise[n] } }; },
      { retries: 2, noisyPct: 25, quiet: { maxWaitS: 0 } });
    expect(best.n).to.equal(1);
    expect(best.attempts).to.equal(3);
    expect(best.other_cpu_by_attempt).to.deep.equal(noise);
  });

  it("meters a private redis-server's CPU under load", async function () {
    this.timeout(60000);
    try { execFileSync('redis-server', ['--version']); } catch (e) { return missing(this, 'redis-server', (e as Error).message); }
    const R = await load();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-test-redis-'));
    // the range lies in the kernel's ephemeral ports: a client connection may hold one, so try a few
    let server: InstanceType<ResourcesModule['PrivateRedis']> | null = null;
    for (let port = REDIS_PORT; !server && port < REDIS_PORT + 5; port++) {
      const candidate = new R.PrivateRedis(port, dir);
      server = await candidate.start().then(() => candidate, () => null);
    }
    if (!server) throw new Error(`no private redis-server could listen on ${REDIS_PORT}..${REDIS_PORT + 4}`);
    const client = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await client.connect();
      const meter = new R.StorageMeter({ redisPort: server.port }).start();
      for (let round = 0; round < 20; round++) {
        const p = client.pipeline();
        for (let k = 0; k < 5000; k++) p.set(`bench-test:${k}`, `value ${round} ${k}`);
        await p.exec();
      }
      const used = meter.stop();
      expect(used.db_cpu_s).to.equal(null);
      expect(used.redis_cpu_s).to.be.a('number').and.greaterThan(0);
      expect(R.redisCpuSec(server.port)).to.be.a('number');
    } finally {
      client.disconnect();
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(R.redisCpuSec(server.port)).to.equal(null); // stopped: unreachable, not zero
  });

  it("meters the CPU of a database's PostgreSQL backends", async function () {
    this.timeout(60000);
    try { await probePostgres(); } catch (e) { return missing(this, 'PostgreSQL', (e as Error).message); }
    const R = await load();
    const db = `perch_bench_test_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${db}`);
    const client = new pg.Client({ connectionString: DATABASE_URL.replace(/\/[^/]*$/, `/${db}`) });
    try {
      await client.connect();
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      expect(R.pgBackendPids(db)).to.include(rows[0].pid);
      const meter = new R.StorageMeter({ dbName: db }).start();
      for (let i = 0; i < 5; i++) await client.query('SELECT count(*) FROM generate_series(1, 1000000)');
      const used = meter.stop();
      expect(used.redis_cpu_s).to.equal(null);
      expect(used.db_cpu_s).to.be.a('number').and.greaterThan(0);
    } finally {
      await client.end().catch(() => {});
      await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await admin.end();
    }
  });
});
