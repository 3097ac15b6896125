#!/usr/bin/env node
// What one login costs Perch on PostgreSQL + Redis, everything counted: the server's CPU, the CPU of
// the PostgreSQL backends of its database, the CPU of a private redis-server, the SQL statements and
// transactions it sends and the Redis commands it makes. Several builds can be compared in one run
// (cases alternate between them, each on a freshly started server, so they see the same machine noise):
//
//   node bench/login-cost.mjs --builds before=/tmp/perch-base,after=. [--users 2000] [--tls-users 1000]
//        [--rounds 2] [--cases cold,cached,starttls] [--port 31222] [--redis-port 31379] [--profile DIR] [--ejabberd]
//
// --ejabberd adds ejabberd (Debian package, mnesia, through ../shared/bench/peers/ejabberd.sh with its
// ports moved to --port + 300 and + 147) to the same run, restarted before each case; its cost is its
// VM's CPU (no PostgreSQL or Redis).
// Each build is a checkout with `npm run build` done (dist/). PostgreSQL: PERCH_BENCH_PG (an admin URL,
// default postgres://root@127.0.0.1:5432/postgres); a database perch_login_<pid>_<i> per build, dropped
// after. Redis: a private redis-server on --redis-port (no persistence), flushed before each case.
// Prints one table and writes the JSON lines to bench/results/login-cost.jsonl.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { waitPort, portFree, createBenchAccounts, runJsonTool, perchNodeFlags } from './lib.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const { values: A } = parseArgs({
  options: {
    builds: { type: 'string', default: `now=${ROOT}` },
    users: { type: 'string', default: '2000' },
    'tls-users': { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '2' },
    cases: { type: 'string', default: 'cold,cached,starttls' },
    port: { type: 'string', default: '31222' },
    'redis-port': { type: 'string', default: '31379' },
    concurrency: { type: 'string', default: '50' },
    profile: { type: 'string', default: '' },
    ejabberd: { type: 'boolean', default: false },
  },
});
const PG_ADMIN_URL = process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/postgres';
const DOMAIN = 'bench.local';
const PORT = Number(A.port);
const REDIS_PORT = Number(A['redis-port']);
const N = Number(A.users);
const N_TLS = Number(A['tls-users']);
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-login-cost-'));
const OUT = path.join(BENCH, 'results', 'login-cost.jsonl');
const SCRAM_CACHE = path.join(WORK, 'scram.json');
const CLK_TCK = 100;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stdout.write(`${s}\n`);
const builds = A.builds.split(',').map((b, i) => {
  const [label, dir] = b.split('=');
  return { label, root: path.resolve(dir), db: `perch_login_${process.pid}_${i}`, dir: path.join(WORK, `data${i}`) };
});
const CASES = {
  cold: { users: N, args: [] },
  cached: { users: N, args: ['--scram-cache', SCRAM_CACHE] },
  starttls: { users: N_TLS, args: ['--tls', 'starttls', '--scram-cache', SCRAM_CACHE] },
};
const cases = A.cases.split(',');

const { default: pg } = await import(pathToFileURL(path.join(ROOT, 'node_modules', 'pg', 'lib', 'index.js')).href);
const { default: Redis } = await import(pathToFileURL(path.join(ROOT, 'node_modules', 'ioredis', 'built', 'index.js')).href);
const pgUrl = (db) => PG_ADMIN_URL.replace(/\/[^/]*$/, `/${db}`);
async function pgAdmin(sql, params = []) {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try { return (await c.query(sql, params)).rows; } finally { await c.end(); }
}

// --- CPU of processes ------------------------------------------------------------------------------

const procCpuSec = (pid) => {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
};
/** PostgreSQL backends connected to `db` ("postgres: 15/main: user db host(port) state"), with their CPU. */
function backendsCpu(db) {
  const out = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const c = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (c.startsWith('postgres: ') && c.split(' ').includes(db)) out.set(d, procCpuSec(d));
    } catch { /* gone */ }
  }
  return out;
}

// --- Redis -------------------------------------------------------------------------------------------

let redis;
function startRedis() {
  const r = spawnSync('redis-server', ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--daemonize', 'yes', '--pidfile', path.join(WORK, 'redis.pid'), '--dir', WORK], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`redis-server: ${r.stderr || r.stdout}`);
}
async function redisInfo() {
  const cpu = await redis.info('cpu');
  const stats = await redis.info('commandstats');
  const num = (k) => Number(new RegExp(`${k}:([\\d.]+)`).exec(cpu)[1]);
  const commands = {};
  for (const m of stats.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) commands[m[1]] = Number(m[2]);
  return { cpuSec: num('used_cpu_sys') + num('used_cpu_user'), commands };
}

// --- Perch -------------------------------------------------------------------------------------------

async function provision(b) {
  fs.mkdirSync(b.dir, { recursive: true });
  b.config = path.join(WORK, `${b.label}.yaml`);
  const cfg = {
    domain: DOMAIN, dataDir: b.dir, logLevel: 'warn',
    listen: { c2s: { host: '127.0.0.1', port: PORT }, c2sDirectTls: null, component: null, metrics: null, upload: null, websocket: null, websocketPlain: null },
    tls: { requireStartTls: false },
    limits: { authFailuresPerIp: 1_000_000, authFailuresPerAccount: 1_000_000, bytesPerSecond: 64 * 1024 * 1024, authTimeout: 120 },
    ping: { idleSeconds: 3600, timeoutSeconds: 60 },
    archive: { defaultPolicy: 'never' },
    databaseUrl: pgUrl(b.db), redisUrl: `redis://127.0.0.1:${REDIS_PORT}/0`, workers: 1,
  };
  await pgAdmin(`CREATE DATABASE ${b.db}`);
  b.created = true;
  fs.writeFileSync(b.config, JSON.stringify(cfg, null, 2));
  const imp = (p) => import(pathToFileURL(path.join(b.root, p)).href);
  const { openDataStores } = await imp('dist/storage/open.js');
  const { addUser } = await imp('dist/src/accounts.js');
  const { loadConfig } = await imp('dist/src/config.js');
  const config = loadConfig(b.config, {});
  const t0 = Date.now();
  const stores = await openDataStores({ databaseUrl: pgUrl(b.db), dataDir: b.dir });
  await createBenchAccounts(addUser, stores, DOMAIN, Math.max(N, N_TLS), config.scramIterations);
  await stores.db.close();
  log(`${b.label}: ${Math.max(N, N_TLS) + 1} accounts in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

async function startPerch(b, tag) {
  const countFile = path.join(WORK, `pgcount-${b.label}.json`);
  const flags = A.profile ? ['--cpu-prof', '--cpu-prof-dir', A.profile, '--cpu-prof-name', `${b.label}-${tag}.cpuprofile`] : [];
  const proc = spawn(process.execPath, [...perchNodeFlags(path.join(b.root, 'dist')), '--import', pathToFileURL(path.join(BENCH, 'pg-count-preload.mjs')).href, ...flags,
    path.join(b.root, 'dist/src/cli.js'), '--config', b.config, 'start'],
  { stdio: ['ignore', 'inherit', 'inherit'], cwd: b.root, env: { ...process.env, PERCH_PG_COUNT_FILE: countFile, PERCH_PG_COUNT_ROOT: b.root } });
  const exited = new Promise((r) => proc.once('exit', r));
  await waitPort(PORT, 30000);
  await sleep(500);
  let seq = 0;
  return {
    pid: proc.pid,
    /** The statement counts so far (asks the preload for them). */
    async pgCounts() {
      const want = ++seq;
      process.kill(proc.pid, 'SIGUSR2');
      for (let i = 0; i < 200; i++) {
        try {
          const j = JSON.parse(fs.readFileSync(countFile, 'utf8'));
          if (j.seq === want) return j.counts;
        } catch { /* not yet */ }
        await sleep(10);
      }
      throw new Error('no statement counts from the server');
    },
    async stop() {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
      await exited;
      clearTimeout(t);
      fs.rmSync(countFile, { force: true });
    },
  };
}

function xmppload(argv) {
  return runJsonTool(path.join(BENCH, 'xmppload.mjs'), argv, log);
}

// --- ejabberd ----------------------------------------------------------------------------------------

const EJ_PORT = PORT + 300;
const ejabberd = {
  label: 'ejabberd', kind: 'ejabberd', dir: path.join(WORK, 'ejabberd'), script: null,
  sh(...a) {
    return execFileSync(this.script, a, { env: { ...process.env, BENCH_DIR: this.dir }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  },
  async provision() {
    const peers = process.env.PEERS_DIR ?? path.resolve(ROOT, '..', 'shared', 'bench', 'peers');
    const copy = path.join(WORK, 'peers');
    fs.mkdirSync(copy, { recursive: true });
    const patch = (text) => text.replaceAll('25222', String(EJ_PORT)).replaceAll('25369', String(PORT + 147))
      .replaceAll('ejabberd-bench@localhost', `perch-login-ejabberd-${process.pid}@localhost`);
    for (const f of ['ejabberd.sh', 'ejabberd.yml.tmpl']) fs.writeFileSync(path.join(copy, f), patch(fs.readFileSync(path.join(peers, f), 'utf8')), { mode: 0o755 });
    this.script = path.join(copy, 'ejabberd.sh');
    log(this.sh('start', 'mnesia'));
    this.started = true;
    const r = await xmppload(['--scenario', 'register', '--port', EJ_PORT, '--domain', DOMAIN, '--user-start', 0, '--users', Math.max(N, N_TLS) + 1, '--concurrency', 20]);
    if (!r || r.result.failed > 0) throw new Error('ejabberd: registering the accounts failed');
  },
  async start() {
    this.sh('restart');
    await sleep(500);
    return Number(fs.readFileSync(path.join(this.dir, 'server.pid'), 'utf8').trim());
  },
  shutdown() { if (this.started) { try { this.sh('stop'); } catch (e) { log(`ejabberd stop: ${e.message}`); } } },
};

async function runEjabberdCase(name, round) {
  const c = CASES[name];
  const pid = await ejabberd.start();
  const cpu0 = procCpuSec(pid);
  log(`---- ejabberd ${name} (round ${round})`);
  const res = await xmppload(['--scenario', 'login', '--port', EJ_PORT, '--domain', DOMAIN, '--users', c.users,
    '--concurrency', A.concurrency, '--hold-ms', 500, '--server-pid', pid, ...c.args]);
  await sleep(300);
  const ok = res?.result.ok ?? 0;
  const per = (x) => (ok ? Math.round((x / ok) * 1000) / 1000 : null);
  const row = {
    build: 'ejabberd', case: name, round, ok, failed: res?.result.failed ?? null, logins_per_s: res?.result.per_s ?? null,
    p50_ms: res?.result.latency_ms?.p50 ?? null,
    auth_to_bind_p50_ms: res ? Math.round((res.result.steps_ms.bind.p50 - res.result.steps_ms.auth.p50) * 10) / 10 : null,
    server_cpu_ms: per((procCpuSec(pid) - cpu0) * 1000), pg_cpu_ms: 0, redis_cpu_ms: 0, sql_statements: null, pg_transactions: null, redis_commands: null,
  };
  row.total_cpu_ms = row.server_cpu_ms;
  log(`    ${row.logins_per_s} logins/s; CPU ms per login: ${row.server_cpu_ms}`);
  fs.appendFileSync(OUT, `${JSON.stringify({ started: new Date().toISOString(), ...row })}\n`);
  return row;
}

const diff = (a, b) => {
  const out = {};
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) out[k] = v - (a[k] ?? 0);
  return out;
};
const total = (o) => Object.values(o).reduce((x, y) => x + y, 0);

async function runCase(b, name, round) {
  const c = CASES[name];
  await redis.flushall();
  const srv = await startPerch(b, `${name}-${round}`);
  try {
    const pg0 = await srv.pgCounts();
    const r0 = await redisInfo();
    const db0 = backendsCpu(b.db);
    const cpu0 = procCpuSec(srv.pid);
    const x0 = (await pgAdmin('SELECT xact_commit::int8 AS c FROM pg_stat_database WHERE datname = $1', [b.db]))[0].c;
    log(`---- ${b.label} ${name} (round ${round})`);
    const res = await xmppload(['--scenario', 'login', '--port', PORT, '--domain', DOMAIN, '--users', c.users,
      '--concurrency', A.concurrency, '--hold-ms', 500, '--server-pid', srv.pid, ...c.args]);
    // logouts are part of a session's cost too: count up to here
    await sleep(300);
    const cpu1 = procCpuSec(srv.pid);
    const db1 = backendsCpu(b.db);
    const r1 = await redisInfo();
    const pg1 = await srv.pgCounts();
    await sleep(600); // pg_stat_database is flushed by backends at most once a second
    const x1 = (await pgAdmin('SELECT xact_commit::int8 AS c FROM pg_stat_database WHERE datname = $1', [b.db]))[0].c;
    let dbCpu = 0;
    for (const [p, v] of db1) dbCpu += v - (db0.get(p) ?? 0);
    const ok = res?.result.ok ?? 0;
    const per = (x) => (ok ? Math.round((x / ok) * 1000) / 1000 : null);
    const statements = diff(pg0, pg1);
    const commands = diff(r0.commands, r1.commands);
    const row = {
      build: b.label, case: name, round, ok, failed: res?.result.failed ?? null, logins_per_s: res?.result.per_s ?? null,
      p50_ms: res?.result.latency_ms?.p50 ?? null,
      auth_to_bind_p50_ms: res ? Math.round((res.result.steps_ms.bind.p50 - res.result.steps_ms.auth.p50) * 10) / 10 : null,
      server_cpu_ms: per((cpu1 - cpu0) * 1000), pg_cpu_ms: per(dbCpu * 1000), redis_cpu_ms: per((r1.cpuSec - r0.cpuSec) * 1000),
      sql_statements: per(total(statements)), pg_transactions: per(Number(x1) - Number(x0) - 2), redis_commands: per(total(commands)),
      statements: Object.fromEntries(Object.entries(statements).map(([k, v]) => [k, per(v)])),
      commands: Object.fromEntries(Object.entries(commands).map(([k, v]) => [k, per(v)])),
    };
    row.total_cpu_ms = Math.round((row.server_cpu_ms + row.pg_cpu_ms + row.redis_cpu_ms) * 1000) / 1000;
    log(`    ${row.logins_per_s} logins/s; CPU ms per login: server ${row.server_cpu_ms}, PostgreSQL ${row.pg_cpu_ms}, Redis ${row.redis_cpu_ms} (total ${row.total_cpu_ms}); per login: ${row.sql_statements} SQL statements, ${row.pg_transactions} transactions, ${row.redis_commands} Redis commands`);
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    fs.appendFileSync(OUT, `${JSON.stringify({ started: new Date().toISOString(), ...row })}\n`);
    return row;
  } finally {
    await srv.stop();
  }
}

const round = (x) => (x === null ? '–' : Number(x.toPrecision(3)));
const median = (xs) => {
  const s = xs.filter((x) => x !== null).sort((a, b) => a - b);
  if (!s.length) return null;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  if (!(await portFree(PORT))) throw new Error(`port ${PORT} is busy`);
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  startRedis();
  redis = new Redis({ port: REDIS_PORT, host: '127.0.0.1', lazyConnect: false });
  const rows = [];
  try {
    for (const b of builds) await provision(b);
    if (A.ejabberd) await ejabberd.provision();
    if (cases.includes('cached') || cases.includes('starttls')) {
      log('---- filling the client\'s SaltedPassword cache (not measured)');
      const srv = await startPerch(builds[0], 'fill');
      await xmppload(['--scenario', 'login', '--port', PORT, '--domain', DOMAIN, '--users', Math.max(N, N_TLS), '--concurrency', A.concurrency, '--hold-ms', 0, '--scram-cache', SCRAM_CACHE]);
      await srv.stop();
    }
    for (let round = 1; round <= Number(A.rounds); round++) {
      for (const name of cases) {
        // alternate the order between rounds so that neither build always goes first
        const order = round % 2 ? builds : [...builds].reverse();
        if (A.ejabberd && round % 2 === 0) rows.push(await runEjabberdCase(name, round));
        for (const b of order) rows.push(await runCase(b, name, round));
        if (A.ejabberd && round % 2 === 1) rows.push(await runEjabberdCase(name, round));
      }
    }
  } finally {
    ejabberd.shutdown();
    redis.disconnect();
    spawnSync('redis-cli', ['-p', String(REDIS_PORT), 'shutdown', 'nosave']);
    for (const b of builds) if (b.created) await pgAdmin(`DROP DATABASE IF EXISTS ${b.db} WITH (FORCE)`).catch((e) => log(`drop ${b.db}: ${e.message}`));
    fs.rmSync(WORK, { recursive: true, force: true });
  }
  const cols = ['logins_per_s', 'auth_to_bind_p50_ms', 'server_cpu_ms', 'pg_cpu_ms', 'redis_cpu_ms', 'total_cpu_ms', 'sql_statements', 'pg_transactions', 'redis_commands'];
  log(`\nmedians over ${A.rounds} rounds (CPU in ms per login; statements, transactions, commands per login)`);
  log(`| case | build | ${cols.join(' | ')} |`);
  log(`|${' --- |'.repeat(cols.length + 2)}`);
  for (const name of cases) {
    for (const b of builds) {
      const rs = rows.filter((r) => r.case === name && r.build === b.label);
      log(`| ${name} | ${b.label} | ${cols.map((c) => round(median(rs.map((r) => r[c])))).join(' | ')} |`);
    }
    if (A.ejabberd) {
      const rs = rows.filter((r) => r.case === name && r.build === 'ejabberd');
      log(`| ${name} | ejabberd | ${cols.map((c) => round(median(rs.map((r) => r[c])))).join(' | ')} |`);
      for (const b of builds) {
        const mine = rows.filter((r) => r.case === name && r.build === b.label);
        const ratio = (c) => { const a = median(rs.map((r) => r[c])), z = median(mine.map((r) => r[c])); return a ? (z / a).toFixed(2) : '–'; };
        log(`| ${name} | ${b.label} ÷ ejabberd | ${cols.map(ratio).join(' | ')} |`);
      }
    }
    if (builds.length === 2) {
      const [x, y] = builds.map((b) => rows.filter((r) => r.case === name && r.build === b.label));
      const ratio = (c) => { const a = median(x.map((r) => r[c])), z = median(y.map((r) => r[c])); return a ? (z / a).toFixed(2) : '–'; };
      log(`| ${name} | ${builds[1].label} ÷ ${builds[0].label} | ${cols.map(ratio).join(' | ')} |`);
    }
  }
  for (const b of builds) {
    const last = rows.filter((r) => r.build === b.label && r.case === cases[0]).pop();
    if (!last) continue;
    log(`\n${last.build}, ${last.case}: SQL statements per login by text`);
    for (const [k, v] of Object.entries(last.statements).sort((x, y) => y[1] - x[1])) log(`  ${v}  ${k}`);
    log(`${last.build}, ${last.case}: Redis commands per login`);
    for (const [k, v] of Object.entries(last.commands).sort((x, y) => y[1] - x[1])) log(`  ${v}  ${k}`);
  }
}

await main();
