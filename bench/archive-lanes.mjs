#!/usr/bin/env node
// Archived one-to-one chat at saturation, two Perch builds in one run (before/after the archive
// writer's lanes): each build on its own fresh PostgreSQL database and a private Redis, archiving
// every chat message (archive.defaultPolicy: always), the builds alternating round by round, each
// round on a freshly started server. Reports delivered/s, latency, and CPU per delivered message of
// the server process and of its PostgreSQL backends (by pid, from /proc), and, where the build has
// it, the archive writer's commit and batch-size histograms (perch_archive_commit_seconds).
//
//   git worktree add /tmp/writer-before <commit> && (cd /tmp/writer-before && ln -s $PWD/node_modules && npm run build)
//   npm run build && node bench/archive-lanes.mjs --before /tmp/writer-before [--rounds 3] [--pairs 200] [--messages 40]
//
//   node bench/archive-lanes.mjs --before . --after-node-flags '--v8-pool-size=1'   # a Node setting, same build
//   node bench/archive-lanes.mjs --before DIR --pairs 500 --messages 20 --rate 2   # paced, not saturated:
//     each sender 2 messages a second (a server that is not busy writes a message or two a statement)
//
// Ports (PERCH_LANES_PORT, default 33222): c2s P, metrics P+68, private redis-server P+157.
// PERCH_LANES_PROF=DIR: each server runs with --cpu-prof, its profile written into DIR.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { waitPort, createBenchAccounts, snapshotDist, nodeFlags, perchNodeFlags } from './lib.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const argv = process.argv.slice(2);
const arg = (name, dflt) => { const i = argv.indexOf(name); return i === -1 ? dflt : argv[i + 1]; };
const BEFORE = arg('--before', null);
if (!BEFORE) { console.error('usage: node bench/archive-lanes.mjs --before DIR [--rounds N] [--pairs P] [--messages M] [--window W | --rate R] [--before-node-flags F] [--after-node-flags F]'); process.exit(2); }
const ROUNDS = Number(arg('--rounds', 3));
const PAIRS = Number(arg('--pairs', 200));
const MESSAGES = Number(arg('--messages', 40));
const WINDOW = Number(arg('--window', 10));
/** Messages a second per sender instead of a window in flight (xmppload's --rate), when given. */
const RATE = arg('--rate', null);
const PORT = Number(process.env.PERCH_LANES_PORT ?? 33222);
const METRICS_PORT = PORT + 68;
const REDIS_PORT = PORT + 157;
const PG_ADMIN_URL = process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/test';
const DOMAIN = 'bench.local';
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-lanes-'));
const TICK = 100; // clock ticks per second (/proc stat)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stdout.write(`${s}\n`);

async function admin(sql, params = []) {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try { return (await c.query(sql, params)).rows; } finally { await c.end(); }
}
const ticks = (pid) => {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime
  } catch { return null; }
};
const backends = async (db) => (await admin('SELECT pid FROM pg_stat_activity WHERE datname = $1', [db])).map((r) => r.pid);

const builds = [
  { name: 'before', root: path.resolve(BEFORE) },
  { name: 'after', root: ROOT },
].map((b) => ({ ...b, db: `perch_writer_bench_${b.name}_${process.pid}`, config: path.join(WORK, `${b.name}.yaml`), runs: [] }));

async function provision(b) {
  b.dist = snapshotDist(b.root, path.join(WORK, `${b.name}-dist`), path.join(ROOT, 'node_modules'));
  await admin(`CREATE DATABASE ${b.db}`);
  const url = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${b.db}`);
  const cfg = {
    domain: DOMAIN, logLevel: 'warn', databaseUrl: url, redisUrl: `redis://127.0.0.1:${REDIS_PORT}/0`, workers: 1,
    listen: { c2s: { host: '127.0.0.1', port: PORT }, c2sDirectTls: null, component: null, metrics: { host: '127.0.0.1', port: METRICS_PORT }, upload: null, websocket: null, websocketPlain: null },
    tls: { requireStartTls: false },
    limits: { authFailuresPerIp: 1_000_000, authFailuresPerAccount: 1_000_000, bytesPerSecond: 64 * 1024 * 1024, authTimeout: 120 },
    ping: { idleSeconds: 3600, timeoutSeconds: 60 },
    archive: { defaultPolicy: 'always' },
  };
  fs.writeFileSync(b.config, JSON.stringify(cfg, null, 2));
  const { openDataStores } = await import(path.join(b.dist, 'storage/open.js'));
  const { addUser } = await import(path.join(b.dist, 'src/accounts.js'));
  const { loadConfig } = await import(path.join(b.dist, 'src/config.js'));
  const stores = await openDataStores({ databaseUrl: url, dataDir: null });
  await createBenchAccounts(addUser, stores, DOMAIN, 2 * PAIRS, loadConfig(b.config, {}).scramIterations);
  await stores.db.close();
}

/** A histogram's count, mean and bucket-bound p50/p99 from the server's /metrics. */
async function histogram(name) {
  try {
    const text = await (await fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`)).text();
    const buckets = [];
    let sum = 0, n = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(name)) continue;
      const v = Number(line.slice(line.lastIndexOf(' ') + 1));
      const le = /le="([^"]+)"/.exec(line);
      if (line.startsWith(`${name}_bucket`) && le) buckets.push([le[1] === '+Inf' ? Infinity : Number(le[1]), v]);
      else if (line.startsWith(`${name}_sum`)) sum += v;
      else if (line.startsWith(`${name}_count`)) n += v;
    }
    if (!n) return null;
    buckets.sort((a, b) => a[0] - b[0]);
    const at = (p) => buckets.find(([, c]) => c >= p * n)?.[0] ?? null;
    return { n, mean: sum / n, p50: at(0.5), p99: at(0.99) };
  } catch { return null; }
}

async function round(b, r) {
  const proc = spawn(process.execPath, [...perchNodeFlags(b.dist), ...nodeFlags(argv, b.name), ...(process.env.PERCH_LANES_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.PERCH_LANES_PROF] : []), path.join(b.dist, 'src/cli.js'), '--config', b.config, 'start'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((res) => proc.once('exit', res));
  try {
    await waitPort(PORT, 30000);
    await sleep(500);
    const tag = RATE ? `chat-${PAIRS}p-r${RATE}` : `chat-${PAIRS}p-w${WINDOW}`;
    log(`---- [${b.name}] round ${r + 1}: ${tag}`);
    const child = spawn(process.execPath, [path.join(BENCH, 'xmppload.mjs'), '--scenario', 'chat', '--port', PORT, '--domain', DOMAIN,
      '--pairs', PAIRS, ...(RATE ? ['--rate', RATE] : ['--window', WINDOW]), '--messages', MESSAGES, '--drain-ms', 10000, '--server-pid', proc.pid, '--label', b.name, '--tag', tag].map(String),
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    const t0 = Date.now();
    const seen = new Map();
    const sample = async () => { for (const pid of await backends(b.db)) if (!seen.has(pid)) seen.set(pid, ticks(pid) ?? 0); };
    // Backends opened before the load starts sending are sampled as they appear; their CPU until then
    // (logins) is small against the chat's, and both builds are treated alike.
    const timer = setInterval(() => void sample().catch(() => {}), 250);
    const code = await new Promise((res) => child.on('exit', res));
    clearInterval(timer);
    const pgTicks = [...seen.entries()].reduce((s, [pid, t0p]) => s + Math.max(0, (ticks(pid) ?? t0p) - t0p), 0);
    const json = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
    for (const l of out.trim().split('\n')) if (!l.startsWith('{')) log(`    ${l}`);
    if (code !== 0 || !json) { log(`    !! xmppload exited with ${code}`); return; }
    const res = JSON.parse(json).result;
    const serverUs = (res.resources.server_cpu_pct / 100) * res.resources.wall_s * 1e6 / res.delivered;
    const pgUs = (pgTicks / TICK) * 1e6 / res.delivered;
    const commit = await histogram('perch_archive_commit_seconds');
    const batch = await histogram('perch_archive_batch_entries');
    const row = { round: r + 1, delivered_per_s: res.delivered_per_s, p50: res.latency_ms.p50, p99: res.latency_ms.p99, in_order: res.all_delivered_in_order, delivered: res.delivered, expected: res.expected, server_us: serverUs, pg_us: pgUs, commit, batch, wall_s: (Date.now() - t0) / 1000 };
    b.runs.push(row);
    log(`    => ${row.delivered_per_s}/s, p50 ${row.p50} / p99 ${row.p99} ms, server ${serverUs.toFixed(0)} µs + PostgreSQL ${pgUs.toFixed(0)} µs CPU per delivered message`
      + (commit ? `; commit p50 ≤ ${(commit.p50 * 1000).toFixed(2)} / p99 ≤ ${(commit.p99 * 1000).toFixed(2)} ms (${commit.n} batches, mean ${(commit.mean * 1000).toFixed(2)} ms), batch mean ${batch.mean.toFixed(1)} entries` : ''));
  } finally {
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
    await exited;
    clearTimeout(t);
  }
}

const median = (xs) => { const s = xs.filter((x) => x !== null && x !== undefined).sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : null; };

execFileSync('redis-server', ['--port', String(REDIS_PORT), '--save', '', '--appendonly', 'no', '--daemonize', 'yes', '--dir', WORK]);
try {
  for (const b of builds) await provision(b);
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? builds : [...builds].reverse();
    for (const b of order) {
      execFileSync('redis-cli', ['-p', String(REDIS_PORT), 'FLUSHALL']);
      await round(b, r);
    }
  }
} finally {
  try { execFileSync('redis-cli', ['-p', String(REDIS_PORT), 'shutdown', 'nosave']); } catch { /* already gone */ }
  for (const b of builds) await admin(`DROP DATABASE IF EXISTS ${b.db} WITH (FORCE)`).catch(() => {});
}

log(`\narchived one-to-one chat, ${PAIRS} pairs, ${RATE ? `${RATE} messages a second per sender` : `window ${WINDOW}`}, ${MESSAGES} messages per sender; medians over ${ROUNDS} round(s)`);
log('| build | delivered/s | latency p50 / p99 ms | server µs CPU / msg | PostgreSQL µs CPU / msg | commit p50 / p99 ms | entries per batch |');
log('|---|---|---|---|---|---|---|');
const m = {};
for (const b of builds) {
  const k = (f) => median(b.runs.map(f));
  m[b.name] = { rate: k((x) => x.delivered_per_s), p50: k((x) => x.p50), p99: k((x) => x.p99), srv: k((x) => x.server_us), pg: k((x) => x.pg_us) };
  const c50 = k((x) => x.commit?.p50), c99 = k((x) => x.commit?.p99), bm = k((x) => x.batch?.mean);
  log(`| ${b.name} | ${m[b.name].rate} | ${m[b.name].p50} / ${m[b.name].p99} | ${m[b.name].srv?.toFixed(0)} | ${m[b.name].pg?.toFixed(0)} | ${c50 === null ? '–' : `≤ ${(c50 * 1000).toFixed(2)} / ≤ ${(c99 * 1000).toFixed(2)}`} | ${bm === null ? '–' : bm.toFixed(1)} |`);
}
const ratio = (a, b) => (a && b ? (a / b).toFixed(2) : '–');
log(`after / before: delivered/s ${ratio(m.after.rate, m.before.rate)}×, p99 ${ratio(m.after.p99, m.before.p99)}×, server CPU per message ${ratio(m.after.srv, m.before.srv)}×, PostgreSQL CPU per message ${ratio(m.after.pg, m.before.pg)}×`);
fs.mkdirSync(path.join(BENCH, 'results', 'tmp'), { recursive: true });
fs.writeFileSync(path.join(BENCH, 'results', 'tmp', 'archive-lanes.json'), JSON.stringify({ date: new Date().toISOString(), argv, builds: builds.map((b) => ({ name: b.name, runs: b.runs })) }, null, 2));
fs.rmSync(WORK, { recursive: true, force: true });
