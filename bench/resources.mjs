// What a server costs and how noisy the machine is, for every benchmark runner: CPU of a process, of the
// PostgreSQL backends serving one database, of a Redis server; a private redis-server per run (so that only the
// measured server's commands count); PostgreSQL's own commit latency; waiting for a quiet machine and keeping
// the quietest of several attempts of a case.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { waitPort, portFree } from './lib.mjs';

export const CLK_TCK = 100; // USER_HZ: /proc times are in 1/100 s on Linux
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const r2 = (x) => (x === null || x === undefined ? null : Math.round(x * 100) / 100);

/** CPU seconds (user + system) a process has used; null when it is gone. */
export function processCpuSec(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime
  } catch { return null; }
}

/**
 * PIDs of the PostgreSQL backends connected to database `db`: their process title is
 * "postgres: 15/main: USER DB HOST(PORT) STATE" (the server runs on this machine).
 */
export function pgBackendPids(db) {
  const out = [];
  if (!db) return out;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const c = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (c.startsWith('postgres: ') && c.split(' ').includes(db)) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

/** CPU seconds per backend of database `db`: Map pid → seconds. */
export function pgBackendsCpu(db) {
  const m = new Map();
  for (const p of pgBackendPids(db)) { const c = processCpuSec(p); if (c !== null) m.set(p, c); }
  return m;
}

/**
 * CPU seconds a Redis server has used (INFO cpu: used_cpu_sys + used_cpu_user, its whole process), read
 * synchronously through redis-cli so that a meter's synchronous stop can take it. Null when unreachable.
 */
export function redisCpuSec(port, host = '127.0.0.1') {
  try {
    const info = execFileSync('redis-cli', ['-h', host, '-p', String(port), 'INFO', 'cpu'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
    const v = (k) => Number(new RegExp(`^${k}:([0-9.]+)`, 'm').exec(info)?.[1]);
    const s = v('used_cpu_sys') + v('used_cpu_user');
    return Number.isFinite(s) ? s : null;
  } catch { return null; }
}

/**
 * The storage a server uses, metered over a phase: CPU of the PostgreSQL backends of `dbName` (a backend that
 * connects during the phase counts from zero; one that ends during it loses its share, so pooled connections
 * are assumed) and of the Redis server on `redisPort`. Either may be absent.
 */
export class StorageMeter {
  constructor({ dbName = null, redisPort = null } = {}) { this.dbName = dbName || null; this.redisPort = redisPort ? Number(redisPort) : null; }
  start() {
    this.db0 = this.dbName ? pgBackendsCpu(this.dbName) : null;
    this.redis0 = this.redisPort ? redisCpuSec(this.redisPort) : null;
    return this;
  }
  /** {db_cpu_s, redis_cpu_s}: null for what is not metered. */
  stop() {
    let db = null;
    if (this.db0) {
      db = 0;
      for (const [p, c1] of pgBackendsCpu(this.dbName)) db += c1 - (this.db0.get(p) ?? 0);
    }
    const redis1 = this.redis0 === null ? null : redisCpuSec(this.redisPort);
    return { db_cpu_s: r2(db), redis_cpu_s: redis1 === null ? null : r2(redis1 - this.redis0) };
  }
}

/**
 * Adds storage CPU to a load generator's resources (wall_s, other_cpu_pct: % of one core): db_cpu_pct and
 * redis_cpu_pct, taken out of "other" unless the load generator already did so for the database.
 */
export function chargeStorage(resources, { db_cpu_s, redis_cpu_s }) {
  if (!resources?.wall_s) return resources;
  const pct = (s) => (s === null || s === undefined ? null : r2((100 * s) / resources.wall_s));
  if (db_cpu_s !== null && db_cpu_s !== undefined && resources.db_cpu_pct === undefined) {
    resources.db_cpu_pct = pct(db_cpu_s);
    if (resources.other_cpu_pct !== null) resources.other_cpu_pct = r2(resources.other_cpu_pct - resources.db_cpu_pct);
  }
  if (redis_cpu_s !== null && redis_cpu_s !== undefined) {
    resources.redis_cpu_pct = pct(redis_cpu_s);
    if (resources.other_cpu_pct !== null) resources.other_cpu_pct = r2(resources.other_cpu_pct - resources.redis_cpu_pct);
  }
  return resources;
}

/** Server + its PostgreSQL backends + its Redis, in CPU seconds, per unit of work (null without the figures). */
export function cpuPerOp(resources, ops, unit = 1e3) {
  if (!resources?.wall_s || !ops || resources.server_cpu_pct === null || resources.server_cpu_pct === undefined) return null;
  const parts = { server: resources.server_cpu_pct, db: resources.db_cpu_pct ?? 0, redis: resources.redis_cpu_pct ?? 0 };
  const per = (p) => ((p / 100) * resources.wall_s * unit) / ops;
  return { total: per(parts.server + parts.db + parts.redis), server: per(parts.server), db: per(parts.db), redis: per(parts.redis) };
}

// ------------------------------------------------------------------------------------------------
// a private redis-server

/** A redis-server of the run's own (no persistence) on 127.0.0.1:port: Perch processes sharing one Redis form one cluster. */
export class PrivateRedis {
  constructor(port, dir) { this.port = Number(port); this.dir = dir; this.proc = null; }
  get url() { return `redis://127.0.0.1:${this.port}`; }
  get pid() { return this.proc?.pid ?? null; }
  async start() {
    if (!(await portFree(this.port))) throw new Error(`port ${this.port} is busy (another private Redis?)`);
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'inherit'] });
    this.exited = new Promise((r) => this.proc.once('exit', r));
    await Promise.race([waitPort(this.port, 10000), this.exited.then((c) => { throw new Error(`redis-server exited with ${c}`); })]);
    return this;
  }
  async stop() {
    if (!this.proc) return;
    this.proc.kill('SIGTERM');
    await this.exited;
    this.proc = null;
  }
}

// ------------------------------------------------------------------------------------------------
// PostgreSQL's own commit latency

/**
 * Times single-row INSERTs in autocommit (each one a commit waiting for its WAL flush) every `intervalMs`
 * on a database of its own (`url`), so that the probe's backend is not charged to the measured server.
 * stop() resolves {n, p50, p99, max, mean} in ms.
 */
export async function startCommitProbe(url, { intervalMs = 20 } = {}) {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query('CREATE TABLE IF NOT EXISTS perch_bench_commit_probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), pad text NOT NULL)');
  const ms = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      await c.query("INSERT INTO perch_bench_commit_probe (pad) VALUES ('commit probe: one archived message worth of bytes, more or less')");
      ms.push(performance.now() - t0);
      await sleep(intervalMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop.catch(() => {});
      await c.query('TRUNCATE perch_bench_commit_probe').catch(() => {});
      await c.end().catch(() => {});
      return latencySummary(ms);
    },
  };
}

export function latencySummary(values) {
  const s = [...values].sort((a, b) => a - b);
  if (!s.length) return { n: 0, p50: null, p99: null, max: null, mean: null };
  const at = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  return { n: s.length, p50: r2(at(50)), p99: r2(at(99)), max: r2(s.at(-1)), mean: r2(s.reduce((a, b) => a + b, 0) / s.length) };
}

/**
 * A histogram of a Prometheus text exposition (NAME_bucket/_sum/_count, every label set summed):
 * {n, mean_ms, p50_le_ms, p99_le_ms}, the percentiles being the upper bounds of their buckets; null when absent.
 */
export function histogramFromMetrics(text, name) {
  const buckets = new Map();
  let sum = 0, n = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    const le = /le="([^"]+)"/.exec(line);
    if (line.startsWith(`${name}_bucket`) && le) { const k = le[1] === '+Inf' ? Infinity : Number(le[1]) * 1000; buckets.set(k, (buckets.get(k) ?? 0) + v); }
    else if (line.startsWith(`${name}_sum`)) sum += v;
    else if (line.startsWith(`${name}_count`)) n += v;
  }
  if (!n) return null;
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const at = (p) => sorted.find(([, c]) => c >= p * n)?.[0] ?? null;
  // p99 interpolated within its bucket, as PromQL's histogram_quantile does.
  const i99 = sorted.findIndex(([, c]) => c >= 0.99 * n);
  const [lo, cLo] = i99 > 0 ? sorted[i99 - 1] : [0, 0];
  const [hi, cHi] = sorted[i99];
  const p99 = hi === Infinity ? lo : lo + ((hi - lo) * (0.99 * n - cLo)) / Math.max(1, cHi - cLo);
  return { n, mean_ms: Math.round((sum / n) * 1e5) / 100, p50_le_ms: at(0.5), p99_le_ms: at(0.99), p99_ms: Math.round(p99 * 100) / 100 };
}

/** Histograms `names` from a server's /metrics (the missing ones left out); {} when it does not answer. */
export async function serverHistograms(metricsPort, names) {
  try {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return Object.fromEntries(names.map((n) => [n, histogramFromMetrics(text, n)]).filter(([, h]) => h));
  } catch { return {}; }
}

// ------------------------------------------------------------------------------------------------
// a quiet machine

/** The machine's CPU seconds since boot, from /proc/stat: busy (user, nice, system, irq, softirq, steal) and all. */
export function machineCpuSec() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { busy: (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK, all: f.slice(0, 8).reduce((a, b) => a + b, 0) / CLK_TCK };
}

/** Machine busy % (100 = one core) over `ms`. */
export async function machineBusyPct(ms) {
  const a = machineCpuSec();
  await sleep(ms);
  const b = machineCpuSec();
  const cores = fs.readFileSync('/proc/stat', 'utf8').split('\n').filter((l) => /^cpu\d/.test(l)).length || 1;
  return (100 * cores * (b.busy - a.busy)) / Math.max(1e-9, b.all - a.all);
}

/**
 * Other jobs on the host skew every figure: waits (up to maxWaitS) until the machine is below quietPct busy
 * (none of the run's servers running). Returns the busy % last seen and the seconds waited.
 */
export async function waitQuiet({ maxWaitS, quietPct = 30, log = () => {} }) {
  const t0 = Date.now();
  let busy = await machineBusyPct(2000);
  let said = false;
  while (busy > quietPct && Date.now() - t0 < maxWaitS * 1000) {
    if (!said) { log(`    machine ${busy.toFixed(0)}% busy with other jobs: waiting up to ${maxWaitS} s for < ${quietPct}%`); said = true; }
    busy = await machineBusyPct(3000);
  }
  const waited = Math.round((Date.now() - t0) / 1000);
  if (said) log(`    machine ${busy.toFixed(0)}% busy after ${waited} s`);
  return { busy_before_pct: Math.round(busy), waited_s: waited };
}

/**
 * A case's measurement: `once()` resolves a result with `resources.other_cpu_pct` (or `error`). It is repeated,
 * up to `retries` more times, when it failed or other jobs took more than noisyPct of a core during it; the
 * attempt with the least such noise is kept, with the failed attempts' errors and every attempt's noise.
 * Each attempt waits for a quiet machine first (after `before`, e.g. a CHECKPOINT).
 */
export async function measureQuietest(once, { retries = 2, noisyPct = 25, quiet = { maxWaitS: 120 }, before = null, log = () => {} } = {}) {
  const tries = [];
  for (let i = 0; i <= retries; i++) {
    if (before) await before();
    const q = await waitQuiet({ ...quiet, log });
    const r = await once();
    r.quiet = q;
    tries.push(r);
    const other = r.resources?.other_cpu_pct;
    if (!r.error && !(other > noisyPct)) break;
    log(`    ${r.error ? 'failed' : `other jobs took ${other}% of a core during the case`}: ${i < retries ? 'repeating it' : 'keeping the quietest attempt'}`);
  }
  const ok = tries.filter((t) => !t.error);
  const noise = (t) => t.resources?.other_cpu_pct ?? 0;
  const best = ok.length ? ok.reduce((a, b) => (noise(b) < noise(a) ? b : a)) : tries.at(-1);
  best.attempts = tries.length;
  best.failed_attempts = tries.filter((t) => t.error).map((t) => t.error);
  best.other_cpu_by_attempt = tries.map((t) => t.resources?.other_cpu_pct ?? null);
  return best;
}
