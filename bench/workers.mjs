#!/usr/bin/env node
// `perch start --workers N` compared: the same saturated cases on 1 and 2 worker processes (or the
// counts of --workers), alternating in one run on PostgreSQL and Redis, printed as one table.
//
//   npm run build && node bench/workers.mjs                  login storm, chat and room fan-out at saturation
//   node bench/workers.mjs --quick                            small sizes, a few minutes
//   node bench/workers.mjs --rounds 3 --workers 1,2,4 --cases login,chat,fanout --out FILE.jsonl
//   node bench/workers.mjs --write-docs                           the table into docs/benchmarks.md too
//
// Load: bench/xmppload.mjs (login storm with a warm SCRAM cache; one-to-one chat with --window 10) and
// the shared ../shared/bench/xmppbench.mjs (muc-fanout, the peers' saturation case). Server CPU is the
// primary and every worker (--server-pid a,b,c); the load generator reports its own CPU, and the table
// gives its share of the machine's busy time: on a small machine the generator competes with the
// server for the same cores. PostgreSQL (the backends of the bench's own database) and Redis (a private
// redis-server) are sampled from /proc over each whole run, setup included.
//
// PostgreSQL: a fresh database on PERCH_BENCH_PG (default postgres://root@127.0.0.1:5432/test), dropped
// after. Redis: a private redis-server on --redis-port (default 32379). Perch: c2s on --port (32222).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitPort, portFree, createBenchAccounts, writeDocsSection, runJsonTool } from './lib.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const XMPPBENCH = path.resolve(ROOT, '..', 'shared', 'bench', 'xmppbench.mjs');
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const value = (name, dflt) => { const i = argv.indexOf(name); return i !== -1 && argv[i + 1] !== undefined ? argv[i + 1] : dflt; };
const QUICK = flag('--quick');
const ROUNDS = Number(value('--rounds', QUICK ? 1 : 2));
const COUNTS = value('--workers', '1,2').split(',').map(Number);
const CASE_NAMES = value('--cases', 'login,chat,fanout').split(',');
const PORT = Number(value('--port', 32222));
const REDIS_PORT = Number(value('--redis-port', 32379));
const OUT = value('--out', null);
// --write-docs: the table also goes to docs/benchmarks.md (between <!-- workers:begin --> and <!-- workers:end -->).
const DOCS = flag('--write-docs');
const PG_ADMIN_URL = process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/test';
const PG_DB = `perch_workers_bench_${process.pid}`;
const PG_URL = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${PG_DB}`);
const DOMAIN = 'localhost';
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-workers-bench-'));
const SCRAM_CACHE = path.join(WORK, 'scram.json');
const TICK = 100; // USER_HZ
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stdout.write(`${s}\n`);

const S = QUICK
  ? { logins: 400, pairs: 100, chatMessages: 20, rooms: 10, occ: 20, fanRate: 10, fanMessages: 5 }
  : { logins: 2000, pairs: 250, chatMessages: 40, rooms: 50, occ: 20, fanRate: 2, fanMessages: 8 };
const N_USERS = Math.max(S.logins, 2 * S.pairs, S.rooms * S.occ) + 1;

/** The cases: what runs, and which figure of its JSON line is the rate. */
const CASES = [
  { name: 'login', what: `login storm, ${S.logins} users, 50 at a time (SCRAM cache warm)`, tool: 'xmppload', unit: 'logins/s',
    argv: ['--scenario', 'login', '--users', S.logins, '--concurrency', 50, '--scram-cache', SCRAM_CACHE],
    rate: (r) => r.result.per_s, ops: (r) => r.result.ok, meter: (r) => r.result.resources },
  { name: 'chat', what: `one-to-one chat, ${S.pairs} pairs, window 10, ${S.chatMessages} msgs each (archived: the default)`, tool: 'xmppload', unit: 'msgs/s',
    argv: ['--scenario', 'chat', '--pairs', S.pairs, '--window', 10, '--messages', S.chatMessages, '--drain-ms', 10000, '--scram-cache', SCRAM_CACHE],
    rate: (r) => r.result.delivered_per_s, ops: (r) => r.result.delivered, meter: (r) => r.result.resources },
  { name: 'fanout', what: `room fan-out, ${S.rooms} rooms x ${S.occ}, ${S.fanRate} msg/s each (offered ${S.rooms * S.occ * S.occ * S.fanRate} deliveries/s)`, tool: 'xmppbench', unit: 'deliveries/s',
    argv: ['--scenario', 'muc-fanout', '--muc', `conference.${DOMAIN}`, '--rooms', S.rooms, '--occupants', S.occ, '--rate', S.fanRate, '--messages', S.fanMessages, '--drain-ms', 45000, '--db-name', PG_DB, '--scram-cache', SCRAM_CACHE],
    rate: (r) => r.delivered_per_s, ops: (r) => r.delivered, meter: (r) => r.resources },
].filter((c) => CASE_NAMES.includes(c.name));

// --- services ------------------------------------------------------------------------------------

async function pgAdmin(sql) {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try { await client.query(sql); } finally { await client.end(); }
}

let redis = null;
async function startRedis() {
  if (!(await portFree(REDIS_PORT))) throw new Error(`port ${REDIS_PORT} is busy (--redis-port)`);
  redis = spawn('redis-server', ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await waitPort(REDIS_PORT, 10000);
}
function flushRedis() {
  execFileSync('redis-cli', ['-p', String(REDIS_PORT), 'flushall'], { stdio: 'ignore' });
}

/** CPU ticks of a process, or null once it is gone. */
function ticks(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch { return null; }
}

/** The PostgreSQL backends serving the bench's database. */
function pgBackends() {
  const pids = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.startsWith('postgres: ') && cmd.includes(` ${PG_DB} `)) pids.push(Number(d));
    } catch { /* gone */ }
  }
  return pids;
}

/** Samples CPU of groups of processes during a run: the last value seen per pid minus its first (0 for new ones). */
function sampler(groups) {
  const first = new Map(), last = new Map();
  const sample = (initial) => {
    for (const [g, list] of Object.entries(groups)) {
      for (const pid of list()) {
        const t = ticks(pid);
        if (t === null) continue;
        const key = `${g}:${pid}`;
        if (!first.has(key)) first.set(key, initial ? t : 0);
        last.set(key, t);
      }
    }
  };
  sample(true);
  const timer = setInterval(() => sample(false), 500);
  return () => {
    clearInterval(timer);
    sample(false);
    const out = {};
    for (const g of Object.keys(groups)) out[g] = 0;
    for (const [key, t] of last) out[key.split(':')[0]] += ((t - first.get(key)) / TICK);
    return out;
  };
}

// --- Perch ---------------------------------------------------------------------------------------

const CONFIG = path.join(WORK, 'perch.yaml');

async function provision() {
  await pgAdmin(`CREATE DATABASE ${PG_DB}`);
  const cfg = {
    domain: DOMAIN, dataDir: path.join(WORK, 'data'), logLevel: 'info', databaseUrl: PG_URL, redisUrl: `redis://127.0.0.1:${REDIS_PORT}`,
    listen: { c2s: { host: '127.0.0.1', port: PORT }, c2sDirectTls: null, component: null, metrics: null, upload: null, websocket: null },
    tls: { requireStartTls: false },
    // A storm from one address must not trip the abuse limits, nor a saturating sender the flood limit.
    limits: { authFailuresPerIp: 1_000_000, authFailuresPerAccount: 1_000_000, bytesPerSecond: 64 * 1024 * 1024, authTimeout: 120 },
    ping: { idleSeconds: 3600, timeoutSeconds: 60 },
    muc: { messagesPerSecond: 1_000_000, messageBurst: 1_000_000 },
  };
  fs.writeFileSync(CONFIG, JSON.stringify(cfg, null, 2));
  const { openDataStores } = await import(path.join(ROOT, 'dist/storage/open.js'));
  const { addUser } = await import(path.join(ROOT, 'dist/src/accounts.js'));
  const { loadConfig } = await import(path.join(ROOT, 'dist/src/config.js'));
  const config = loadConfig(CONFIG, {});
  const t0 = Date.now();
  const stores = await openDataStores({ databaseUrl: PG_URL, dataDir: null });
  await createBenchAccounts(addUser, stores, DOMAIN, N_USERS, config.scramIterations);
  await stores.db.close();
  log(`${N_USERS + 1} accounts in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/** Starts Perch with n workers; resolves once every node serves, with every process id (primary first). */
function startPerch(n) {
  const proc = spawn(process.execPath, [path.join(ROOT, 'dist/src/cli.js'), '--config', CONFIG, 'start', '--workers', String(n)], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((r) => proc.once('exit', r));
  const ready = n === 1 ? '"msg":"perch started"' : '"msg":"workers started"';
  return new Promise((resolve, reject) => {
    let partial = '';
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error('perch did not start in 60 s')); }, 60000);
    proc.stderr.setEncoding('utf8').on('data', (chunk) => {
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop();
      for (const line of lines) {
        if (/"level":"(warn|error)"/.test(line)) log(`    perch: ${line.slice(0, 300)}`);
        if (!line.includes(ready)) continue;
        clearTimeout(timer);
        const rec = JSON.parse(line);
        const pids = n === 1 ? [proc.pid] : [proc.pid, ...rec.pids];
        resolve({
          pids,
          async stop() {
            proc.kill('SIGTERM');
            const t = setTimeout(() => proc.kill('SIGKILL'), 30000);
            await exited;
            clearTimeout(t);
          },
        });
      }
    });
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`perch exited with ${code} before serving`)); });
  });
}

/** Runs a load generator; resolves with its JSON line (or null when it failed). */
function load(c, pids) {
  const script = c.tool === 'xmppload' ? path.join(BENCH, 'xmppload.mjs') : XMPPBENCH;
  return runJsonTool(script, [...c.argv, '--port', PORT, '--domain', DOMAIN, '--server-pid', pids.join(',')], log);
}

// --- the run -------------------------------------------------------------------------------------

async function measure(c, n) {
  flushRedis();
  const perch = await startPerch(n);
  await sleep(500);
  // The primary on its own too: it accepts every connection and hands it to a worker.
  const stopSampling = sampler({ perch: () => perch.pids, primary: () => (n > 1 ? [perch.pids[0]] : []), pg: pgBackends, redis: () => [redis.pid] });
  let r = null;
  let cpu;
  try {
    r = await load(c, perch.pids);
  } finally {
    cpu = stopSampling();
    await perch.stop();
  }
  if (!r) return null;
  const m = c.meter(r);
  const ops = c.ops(r);
  const row = {
    case: c.name, workers: n, rate: c.rate(r), ops,
    server_cpu_pct: m.server_cpu_pct, server_cpu_ms_per_op: ops ? (m.server_cpu_pct / 100) * m.wall_s * 1000 / ops : null,
    loadgen_cpu_pct: m.loadgen_cpu_pct, loadgen_share_pct: m.machine_busy_pct ? (100 * m.loadgen_cpu_pct) / m.machine_busy_pct : null,
    machine_busy_pct: m.machine_busy_pct, other_cpu_pct: m.other_cpu_pct,
    run_cpu_s: { perch: cpu.perch, primary: cpu.primary, postgres: cpu.pg, redis: cpu.redis },
  };
  log(`    => ${c.name} x${n}: ${row.rate} ${c.unit}, server ${m.server_cpu_pct}% (${row.server_cpu_ms_per_op?.toFixed(3)} ms/op), load generator ${m.loadgen_cpu_pct}% (${row.loadgen_share_pct?.toFixed(0)}% of busy), whole run: perch ${cpu.perch.toFixed(1)} s (primary ${cpu.primary.toFixed(2)} s), PostgreSQL ${cpu.pg.toFixed(1)} s, Redis ${cpu.redis.toFixed(2)} s CPU`);
  if (OUT) fs.appendFileSync(OUT, JSON.stringify({ ...row, started: new Date().toISOString(), raw: r }) + '\n');
  return row;
}

let LOAD_AT_START = '';
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null; };
const f = (v, d = 0) => (v === null || v === undefined || Number.isNaN(v) ? '–' : Number(v).toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));

function table(rows) {
  const L = [];
  L.push(`| case | workers | rate | × 1 worker | server CPU % | server CPU ms/op | load generator CPU % (share of busy) | machine busy % | whole run CPU s: perch (its primary) / PostgreSQL / Redis |`);
  L.push('|---|---|---|---|---|---|---|---|---|');
  for (const c of CASES) {
    const base = median(rows.filter((r) => r.case === c.name && r.workers === COUNTS[0]).map((r) => r.rate));
    for (const n of COUNTS) {
      const rs = rows.filter((r) => r.case === c.name && r.workers === n);
      if (!rs.length) continue;
      const med = (k) => median(rs.map((r) => r[k]).filter((v) => v !== null));
      const rate = med('rate');
      const runs = rs.length > 1 ? ` (${rs.map((r) => f(r.rate)).join(', ')})` : '';
      L.push(`| ${n === COUNTS[0] ? c.what : ''} | ${n} | ${f(rate)} ${c.unit}${runs} | ${base ? (rate / base).toFixed(2) + '×' : '–'} | ${f(med('server_cpu_pct'))} | ${f(med('server_cpu_ms_per_op'), 3)} | ${f(med('loadgen_cpu_pct'))} (${f(med('loadgen_share_pct'))}%) | ${f(med('machine_busy_pct'))} | ${f(median(rs.map((r) => r.run_cpu_s.perch)), 1)} (${n > 1 ? f(median(rs.map((r) => r.run_cpu_s.primary)), 2) : '–'}) / ${f(median(rs.map((r) => r.run_cpu_s.postgres)), 1)} / ${f(median(rs.map((r) => r.run_cpu_s.redis)), 2)} |`);
    }
  }
  return L.join('\n');
}

async function main() {
  if (!(await portFree(PORT))) throw new Error(`port ${PORT} is busy (--port)`);
  LOAD_AT_START = os.loadavg().map((v) => v.toFixed(2)).join(' ');
  log(`perch workers bench: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}, ${ROUNDS} round(s), workers ${COUNTS.join(' vs ')}${QUICK ? ', quick' : ''}`);
  await startRedis();
  const rows = [];
  try {
    await provision();
    // Fills the client's SCRAM cache, so that every measured login storm costs the server only.
    log('---- warm-up (fills the SCRAM cache; not measured)');
    {
      const perch = await startPerch(1);
      await load({ tool: 'xmppload', argv: ['--scenario', 'login', '--users', N_USERS, '--concurrency', 50, '--scram-cache', SCRAM_CACHE] }, perch.pids);
      await perch.stop();
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of CASES) {
        // Alternating order: neither count always runs first (on a warmer or quieter machine).
        const order = round % 2 === 0 ? COUNTS : [...COUNTS].reverse();
        for (const n of order) {
          log(`---- round ${round + 1}/${ROUNDS}: ${c.name}, ${n} worker(s)`);
          const row = await measure(c, n);
          if (row) rows.push(row);
        }
      }
    }
  } finally {
    redis?.kill('SIGTERM');
    await pgAdmin(`DROP DATABASE IF EXISTS ${PG_DB} WITH (FORCE)`).catch((e) => log(`drop database: ${e.message}`));
    fs.rmSync(WORK, { recursive: true, force: true });
  }
  const heading = `## perch start --workers: ${COUNTS.join(' vs ')} workers (bench/workers.mjs)`;
  const about = [
    `Generated by \`npm run build && node bench/workers.mjs ${argv.filter((a, i) => a !== '--write-docs' && a !== '--out' && argv[i - 1] !== '--out').join(' ')}\``.replace(/ `$/, '`')
      + ` on ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load average at the start ${LOAD_AT_START}, median of ${ROUNDS} round(s), the counts alternating.`,
    '',
    '- Perch on PostgreSQL (a fresh database) and a private Redis; each case on a freshly started server; rate = the load generator\'s figure.',
    '- Server CPU: the primary and every worker over the measured window (% of one core), and per operation (login, message delivered, room delivery).',
    '- The load generator\'s CPU, and its share of the machine\'s busy time; machine busy 200% on 2 cores means the cores were full (other jobs included).',
    '- Whole run: CPU seconds of the Perch processes (the primary alone in brackets), of the PostgreSQL backends of the bench\'s database and of Redis, logins and setup included.',
  ];
  const text = [heading, '', ...about, '', table(rows)].join('\n');
  log('');
  log(text);
  if (DOCS) writeDocsSection(ROOT, `<!-- workers:begin -->\n${text}\n\n<!-- workers:end -->`, 'workers', 'bench/workers.mjs', log);
}

main().catch(async (e) => {
  process.stderr.write(`bench/workers: ${e?.stack ?? e}\n`);
  redis?.kill('SIGTERM');
  await pgAdmin(`DROP DATABASE IF EXISTS ${PG_DB} WITH (FORCE)`).catch(() => {});
  process.exit(1);
});
