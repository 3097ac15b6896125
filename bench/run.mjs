#!/usr/bin/env node
// Login storms and one-to-one chat: Perch, ejabberd and Prosody on the same storage, measured in the same run
// with the same load generator (bench/xmppload.mjs), case by case and alternately, each case on a freshly
// started server process; then the parser micro-benchmark. Writes its section of docs/benchmarks.md (between
// <!-- xmpp:begin --> and <!-- xmpp:end -->) and the targets table; `npm run bench` runs it with the others.
//
//   node bench/run.mjs                      full run (2,000-user login storms, 500 chat pairs)
//   node bench/run.mjs --quick              small sizes, a few minutes
//   node bench/run.mjs --embedded           Perch on its embedded defaults (PGlite, in-process session store),
//                                           the peers on theirs (ejabberd mnesia, Prosody internal)
//   node bench/run.mjs --no-ejabberd        (also --no-prosody) fewer servers
//   node bench/run.mjs --no-peer-archiving  without the chat cases' second ejabberd column (its one-to-one
//                                           archive on, the job Perch does by default)
//   node bench/run.mjs --no-archive-chat    Perch archives no one-to-one chat (as the peers here), instead of
//                                           its default (every message archived before delivery)
//   node bench/run.mjs --profile            also CPU-profile Perch in each case (top frames printed)
//   node bench/run.mjs --no-docs            do not rewrite docs/benchmarks.md
//   node bench/run.mjs --report-only bench/results/tmp/xmpp-latest.jsonl   rewrite the section from a run's
//                                           raw results (pass the run's --quick / --no-* / --embedded flags too)
//   --retries N, --quiet-wait S             repeats of a noisy or failed case (default 2), wait for a quiet
//                                           machine before each case (default 120 s; 0 with --quick)
//   --port-base B                           ports B+222 … B+581 (default 28000; or PERCH_BENCH_PORT_BASE)
//
// Production configuration by default: Perch on PostgreSQL (a fresh database perch_bench_PID on the server of
// PERCH_BENCH_PG, dropped after) and Redis (a redis-server started for the run on B+379: only Perch's commands
// reach it); ejabberd 23 (`default_db: sql`, its database made from /usr/share/ejabberd/sql/pg.sql) and
// Prosody 0.12 (`storage = "sql"`) on the same PostgreSQL through copies of ../shared/bench/peers/*.sh
// (bench/peers.mjs). A server's cost is its own CPU + its PostgreSQL backends' + its Redis's (bench/resources.mjs).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitPort, portFree, createBenchAccounts, writeDocsSection, runJsonTool, startPerchProcess, perchNodeFlags } from './lib.mjs';
import { PrivateRedis, measureQuietest, cpuPerOp } from './resources.mjs';
import { peerServer } from './peers.mjs';
import { targetsData, writeTargets } from './targets.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const argv = process.argv.slice(2);
const args = new Set(argv);
const argValue = (name) => { const i = argv.indexOf(name); return i === -1 ? null : argv[i + 1]; };
const QUICK = args.has('--quick');
const PROFILE = args.has('--profile');
const WRITE_DOCS = !args.has('--no-docs');
const EMBEDDED = args.has('--embedded');
const ARCHIVE_CHAT = !args.has('--no-archive-chat');
const PG_ADMIN_URL = process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/test';
const DB_PREFIX = `perch_bench_${process.pid}`;
const PG_DB = `${DB_PREFIX}_xmpp`;
const pgUrl = (db) => PG_ADMIN_URL.replace(/\/[^/]*$/, `/${db}`);
const PEERS_DIR = process.env.PEERS_DIR ?? path.resolve(ROOT, '..', 'shared', 'bench', 'peers');
const DOMAIN = 'bench.local';
const PORT_BASE = Number(argValue('--port-base') ?? process.env.PERCH_BENCH_PORT_BASE ?? 28000);
const PERCH_PORT = PORT_BASE + 222;
const N_LOGIN = QUICK ? 200 : 2000;
const N_LOGIN_TLS = QUICK ? 100 : 1000;
const PAIRS = QUICK ? 50 : 500;
const N_USERS = Math.max(N_LOGIN, N_LOGIN_TLS, 2 * PAIRS);
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-bench-'));
const RAW = path.join(BENCH, 'results', 'tmp', `xmpp-${QUICK ? 'quick' : 'latest'}.jsonl`);
const PROFILE_DIR = path.join(BENCH, 'results', 'tmp', 'profiles'); // kept: open them in Chrome DevTools
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stdout.write(`${s}\n`);
const stamp = () => new Date().toISOString().slice(11, 19);
const redis = EMBEDDED ? null : new PrivateRedis(Number(process.env.PERCH_BENCH_REDIS_PORT ?? PORT_BASE + 379), WORK);

// a quiet machine before each case, noisy cases repeated (bench/resources.mjs)
const QUIET_WAIT_S = Number(argValue('--quiet-wait') ?? (QUICK ? 0 : 120));
const QUIET_PCT = 30;
const RETRIES = Number(argValue('--retries') ?? (QUICK ? 0 : 2));
const NOISY_PCT = 25;

// ------------------------------------------------------------------------------------------------
// the cases: [tag, xmppload arguments, options]

const CASES = [
  [`login-scram-cold-${N_LOGIN}`, ['--scenario', 'login', '--users', N_LOGIN, '--concurrency', 50], { coldCache: true, target: 'login-cold' }],
  [`login-scram-${N_LOGIN}`, ['--scenario', 'login', '--users', N_LOGIN, '--concurrency', 50], { target: 'login-cached' }],
  [`login-starttls-scram-${N_LOGIN_TLS}`, ['--scenario', 'login', '--users', N_LOGIN_TLS, '--concurrency', 50, '--tls', 'starttls'], { target: 'login-starttls' }],
  [`chat-${PAIRS}p-r2`, ['--scenario', 'chat', '--pairs', PAIRS, '--rate', 2, '--messages', 20, '--drain-ms', 10000]],
  [`chat-${PAIRS}p-sat`, ['--scenario', 'chat', '--pairs', PAIRS, '--window', 10, '--messages', 40, '--drain-ms', 10000]],
];

// ------------------------------------------------------------------------------------------------
// helpers

/** Runs xmppload, echoes its human summary, returns its JSON line (with its resources on top), or {error}. */
async function xmppload(label, tag, argv) {
  log(`---- ${stamp()} [${label}] ${tag}`);
  const r = await runJsonTool(path.join(BENCH, 'xmppload.mjs'), [...argv, '--label', label, '--tag', tag, '--out', RAW], log);
  return r ? { ...r, resources: r.result?.resources } : { error: 'xmppload failed' };
}

async function pgAdmin(sql) {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try { await client.query(sql); } finally { await client.end(); }
}

// ------------------------------------------------------------------------------------------------
// Perch

const perch = {
  name: 'perch', title: 'Perch', port: PERCH_PORT, db: EMBEDDED ? null : PG_DB,
  dir: path.join(WORK, 'perch'),
  config: path.join(WORK, 'perch.yaml'),
  proc: null,
  profiles: [],

  async provision() {
    if (!(await portFree(PERCH_PORT))) throw new Error(`port ${PERCH_PORT} is busy`);
    fs.mkdirSync(this.dir, { recursive: true });
    const cfg = {
      domain: DOMAIN, dataDir: this.dir, logLevel: 'warn',
      listen: { c2s: { host: '127.0.0.1', port: PERCH_PORT }, c2sDirectTls: null, component: null, websocket: null, websocketPlain: null, metrics: null, upload: null },
      tls: { requireStartTls: false },
      // a login storm from one address must not trip the abuse limits
      limits: { authFailuresPerIp: 1_000_000, authFailuresPerAccount: 1_000_000, bytesPerSecond: 64 * 1024 * 1024, authTimeout: 120 },
      ping: { idleSeconds: 3600, timeoutSeconds: 60 },
      // Perch's default archives every chat message before delivering it; the peers' configurations here
      // archive none (ejabberd mod_mam default: never). --no-archive-chat makes Perch do the same.
      archive: { defaultPolicy: ARCHIVE_CHAT ? 'always' : 'never' },
      ...(EMBEDDED ? {} : { databaseUrl: pgUrl(PG_DB), redisUrl: redis.url, workers: 1 }),
    };
    if (!EMBEDDED) { await pgAdmin(`CREATE DATABASE ${PG_DB}`); this.created = true; }
    fs.writeFileSync(this.config, JSON.stringify(cfg, null, 2)); // JSON is YAML
    // One process creates every account (PGlite allows one process per data dir), before the server starts.
    const { openDataStores } = await import(path.join(ROOT, 'dist/storage/open.js'));
    const { addUser } = await import(path.join(ROOT, 'dist/src/accounts.js'));
    const { loadConfig } = await import(path.join(ROOT, 'dist/src/config.js'));
    const config = loadConfig(this.config, {});
    const t0 = Date.now();
    const stores = await openDataStores({ databaseUrl: EMBEDDED ? null : pgUrl(PG_DB), dataDir: this.dir });
    await createBenchAccounts(addUser, stores, DOMAIN, N_USERS, config.scramIterations);
    await stores.db.close();
    const secs = (Date.now() - t0) / 1000;
    this.provisioned = `${N_USERS + 1} accounts created by \`addUser\` in ${secs.toFixed(1)} s before the server starts (${config.scramIterations} SCRAM iterations)`;
    log(`perch: ${this.provisioned}`);
  },

  async start(tag) {
    const flags = PROFILE ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR, '--cpu-prof-name', `perch-${tag}.cpuprofile`] : [];
    this.tag = tag;
    ({ proc: this.proc, exited: this.exited } = await startPerchProcess([...perchNodeFlags(path.join(ROOT, 'dist')), ...flags, path.join(ROOT, 'dist/src/cli.js'), '--config', this.config, 'start'], PERCH_PORT, {
      stop: (proc, exited) => { this.proc = proc; this.exited = exited; return this.stop(); }, log,
    }));
    await sleep(500);
    return this.proc.pid;
  },

  async stop() {
    if (!this.proc) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc?.kill('SIGKILL'), 15000);
    await this.exited;
    clearTimeout(t);
    this.proc = null;
    if (PROFILE) this.profiles.push([this.tag, path.join(PROFILE_DIR, `perch-${this.tag}.cpuprofile`)]);
  },

  async shutdown() {
    await this.stop();
    if (this.created) await pgAdmin(`DROP DATABASE IF EXISTS ${PG_DB} WITH (FORCE)`).catch((e) => log(`drop ${PG_DB}: ${e.message}`));
  },

  version() { return JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version; },
  /** What the load generator meters beside the server: its PostgreSQL backends and its private Redis. */
  storageArgs() { return EMBEDDED ? [] : ['--db-name', PG_DB, '--redis-port', redis.port]; },
};

// ------------------------------------------------------------------------------------------------
// the peers, on the same storage as Perch

const peerOptions = (name) => ({
  work: WORK, peersDir: PEERS_DIR, portBase: PORT_BASE, db: `${DB_PREFIX}_${name}`, pgAdmin, log,
  storage: EMBEDDED ? (name === 'ejabberd' ? 'mnesia' : 'internal') : 'sql',
  // accounts by XEP-0077, which the peer configs enable for benchmarks only
  register: async (port) => (await xmppload(name, 'register', ['--scenario', 'register', '--port', port, '--domain', DOMAIN,
    '--user-start', 0, '--users', N_USERS + 1, '--concurrency', 20])).result,
});
const peer = (name, variant = null) => {
  const p = peerServer(name, { ...peerOptions(variant ? `${name}_${variant.key}` : name), variant });
  p.storageArgs = () => (p.db ? ['--db-name', p.db] : []);
  p.chatOnly = variant?.chatOnly ?? false;
  return p;
};
// ejabberd once more with its one-to-one archive on (mod_mam default: always, as Perch's default), for
// the chat cases: the same job as Perch's, beside the goal's baseline (ejabberd not archiving).
const EJABBERD_ARCHIVING = {
  key: 'mam', title: 'archiving', chatOnly: true,
  patch: (t) => t.replace(/^(\s*)default: never\b.*$/m, "$1default: always         # 1:1 chats archived (the run's ejabberd-archiving column)"),
};
const SERVERS = [
  perch,
  ...(args.has('--no-ejabberd') ? [] : [peer('ejabberd')]),
  ...(args.has('--no-ejabberd') || args.has('--no-peer-archiving') || EMBEDDED ? [] : [peer('ejabberd', EJABBERD_ARCHIVING)]),
  ...(args.has('--no-prosody') ? [] : [peer('prosody')]),
];

// ------------------------------------------------------------------------------------------------
// CPU profile summary: self time per function, top frames

function topFrames(file, n = 15) {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
  const self = new Map();
  let total = 0;
  const dt = (prof.endTime - prof.startTime) / Math.max(1, prof.samples?.length ?? 1) / 1000; // ms per sample
  for (const node of prof.nodes) {
    const cf = node.callFrame;
    const where = cf.url ? `${cf.url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '')}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + (node.hitCount ?? 0));
    total += node.hitCount ?? 0;
  }
  const frames = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([k, v]) => ({ frame: k, self_pct: Math.round((v / total) * 1000) / 10, self_ms: Math.round(v * dt) }));
  // self time by where the code lives: a package, a Perch directory, wasm, or the runtime
  const where = new Map();
  for (const node of prof.nodes) {
    const u = node.callFrame.url;
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
    const k = m ? m[1] : u.startsWith('wasm://') ? 'wasm (PGlite)' : u.includes('/dist/') ? `perch ${u.split('/dist/')[1].split('/')[0]}/` : u.startsWith('node:') ? 'node: core' : node.callFrame.functionName.startsWith('(') ? node.callFrame.functionName : 'native/builtins';
    where.set(k, (where.get(k) ?? 0) + (node.hitCount ?? 0));
  }
  const byPlace = [...where.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, v]) => `${k} ${Math.round((v / total) * 1000) / 10}%`);
  return { frames, byPlace };
}

// ------------------------------------------------------------------------------------------------
// report

const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v) ? '–' : Number(v).toFixed(d));
const big = (v) => (v === null || v === undefined ? '–' : Math.round(v).toLocaleString('en-US'));
const ratio = (a, b) => (a === null || a === undefined || !b ? '–' : `${(a / b).toFixed(2)}×`);
const isLogin = (tag) => tag.startsWith('login');
const ok = (r) => r && !r.error && r.result;
/** Server + its PostgreSQL backends + its Redis: ms per login, µs per delivered message. */
const costPerOp = (tag, r) => (ok(r) ? cpuPerOp(r.result.resources, isLogin(tag) ? r.result.ok : r.result.delivered, isLogin(tag) ? 1e3 : 1e6) : null);

/** rows: [metric, cell per server, Perch ÷ each peer] */
function rowsFor(tag, R) {
  const peers = SERVERS.slice(1).map((s) => s.name);
  const rows = [];
  const row = (metric, cell, num) => rows.push([metric, ...SERVERS.map((s) => (R[s.name]?.error ? '✗ failed' : ok(R[s.name]) ? cell(R[s.name].result, R[s.name]) : '–')),
    ...peers.map((p) => (num && ok(R.perch) && ok(R[p]) ? ratio(num(R.perch), num(R[p])) : ''))]);
  const lat = (r) => `${fmt(r.latency_ms.p50)} / ${fmt(r.latency_ms.p99)} / ${fmt(r.latency_ms.max, 0)}`;
  if (isLogin(tag)) {
    row('logins/s', (r) => fmt(r.per_s, 0), (x) => x.result.per_s);
    row('latency p50 / p99 / max ms (ratio of p99s)', lat, (x) => x.result.latency_ms.p99);
    row('server kB per idle session (RSS delta)', (r) => `${fmt(r.kb_per_session)} (${fmt(r.rss_before_kb / 1024, 0)}→${fmt(r.rss_after_kb / 1024, 0)} MiB)`, (x) => x.result.kb_per_session);
    row('ok / failed; client PBKDF2 computed', (r) => `${r.ok} / ${r.failed}; ${r.client_pbkdf2_computed}`);
  } else {
    row('delivered/s', (r) => big(r.delivered_per_s), (x) => x.result.delivered_per_s);
    row('latency p50 / p99 / max ms (ratio of p99s)', lat, (x) => x.result.latency_ms.p99);
    row('delivered / expected, order', (r) => `${r.delivered}/${r.expected} ${r.all_delivered_in_order ? '✓ in order' : `✗ (bounced ${r.errors_back}, out of order ${r.out_of_order})`}`);
  }
  const pc = (v) => (v === null || v === undefined ? '–' : `${fmt(v, 0)}%`);
  row('CPU % server / db / redis / load generator / other', (r) => { const m = r.resources; return `${pc(m.server_cpu_pct)} / ${pc(m.db_cpu_pct)} / ${pc(m.redis_cpu_pct)} / ${pc(m.loadgen_cpu_pct)} / ${pc(m.other_cpu_pct)}`; });
  const unit = isLogin(tag) ? 'ms per login' : 'µs per delivered message';
  const d = isLogin(tag) ? 2 : 0;
  row(`CPU ${unit}: server + db + redis = total`, (r, x) => { const c = costPerOp(tag, x); return c ? `${fmt(c.server, d)} + ${fmt(c.db, d)} + ${fmt(c.redis, d)} = **${fmt(c.total, d)}**` : '–'; }, (x) => costPerOp(tag, x)?.total);
  row('attempts (other jobs\' CPU % each)', (r, x) => `${x.attempts} (${(x.other_cpu_by_attempt ?? []).map((v) => fmt(v, 0)).join(', ')})`);
  return rows;
}

const TITLES = {
  'login-scram-cold': (n) => `Login storm, SCRAM-SHA-1, ${n} users, client SaltedPassword cache cold`,
  'login-scram': (n) => `Login storm, SCRAM-SHA-1, ${n} users (client SaltedPassword cached)`,
  'login-starttls-scram': (n) => `Login storm, STARTTLS + SCRAM-SHA-1, ${n} users`,
};
function title(tag) {
  let m = /^(login-[a-z-]+?)-(\d+)$/.exec(tag);
  if (m && TITLES[m[1]]) return `${TITLES[m[1]](m[2])} (concurrency 50)`;
  m = /^chat-(\d+)p-(r2|sat)$/.exec(tag);
  if (m) return m[2] === 'r2' ? `1:1 chat, ${m[1]} pairs, 2 msg/s per sender (offered ${big(m[1] * 4)} msg/s), 20 msgs each` : `1:1 chat, ${m[1]} pairs, saturation (window 10 in flight per sender), 40 msgs each`;
  return tag;
}

/** The page's targets this runner measures (bench/targets.mjs): {id, value, met}. */
function targets(results) {
  const P = results.perch ?? {}, E = results.ejabberd ?? {};
  const out = [];
  for (const [tag, , opts] of CASES.filter(([, , o]) => o?.target)) {
    if (!ok(P[tag]) || !ok(E[tag])) { out.push({ id: opts.target, value: null, met: null }); continue; }
    const rate = P[tag].result.per_s / E[tag].result.per_s;
    const cost = costPerOp(tag, E[tag])?.total / costPerOp(tag, P[tag])?.total; // above 1: Perch cheaper
    const full = P[tag].result.failed === 0 && !QUICK && !EMBEDDED;
    out.push({ id: opts.target, value: `${rate.toFixed(2)}× logins/s, ${cost.toFixed(2)}× CPU per login (Perch ${fmt(costPerOp(tag, P[tag]).total, 2)} ms, ejabberd ${fmt(costPerOp(tag, E[tag]).total, 2)} ms)${QUICK ? ' (quick run)' : ''}`, met: full ? rate >= 1 && cost >= 1 : null });
  }
  const sat = `chat-${PAIRS}p-sat`, paced = `chat-${PAIRS}p-r2`;
  if (ok(P[sat]) && ok(E[sat]) && ok(P[paced]) && ok(E[paced])) {
    const rate = P[sat].result.delivered_per_s / E[sat].result.delivered_per_s;
    const p99 = [P[paced].result.latency_ms.p99, E[paced].result.latency_ms.p99];
    const complete = P[sat].result.all_delivered_in_order && P[paced].result.all_delivered_in_order;
    const A = results['ejabberd-mam'] ?? {};
    const same = ok(A[sat]) ? `; against ejabberd archiving too: ${(P[sat].result.delivered_per_s / A[sat].result.delivered_per_s).toFixed(2)}× delivered/s, ${(costPerOp(sat, A[sat]).total / costPerOp(sat, P[sat]).total).toFixed(2)}× its CPU per message` : '';
    out.push({ id: 'chat-archived', value: `${rate.toFixed(2)}× delivered/s; paced p99 ${fmt(p99[0])} vs ${fmt(p99[1])} ms${ARCHIVE_CHAT ? '' : ' (Perch not archiving: --no-archive-chat)'}${same}${QUICK ? ' (quick run)' : ''}`, met: ARCHIVE_CHAT && !QUICK && !EMBEDDED ? complete && rate >= 1 && p99[0] <= p99[1] : null });
  } else out.push({ id: 'chat-archived', value: null, met: null });
  return out;
}

function section(meta, results, parser, profiles) {
  const L = [];
  L.push('<!-- xmpp:begin -->', '## Logins and one-to-one chat (bench/run.mjs)', '');
  L.push(`Generated by \`node bench/run.mjs${meta.argv.length ? ` ${meta.argv.join(' ')}` : ''}\` on ${meta.date} (${meta.minutes} min); this section is rewritten by each run of it (\`npm run bench\` runs every section).`, '');
  L.push(`- Machine: ${meta.cpus} × ${meta.cpuModel}, ${meta.memGiB} GiB RAM, Linux ${meta.kernel}, Node ${meta.node}; load average before the run ${meta.loadavg}. Server, its storage, the load generator and the kernel share the cores.`);
  L.push(`- Perch ${meta.perchVersion} from \`dist/\` (commit ${meta.commit}), ${EMBEDDED ? 'embedded defaults: PGlite storage, in-process session store' : `PostgreSQL 15 (database ${meta.db}) + Redis 7 (a redis-server started for the run: only Perch's commands reach it)`}, one-to-one archiving ${ARCHIVE_CHAT ? 'on (`archive.defaultPolicy: always`, its default: every message archived before delivery)' : 'off (`archive.defaultPolicy: never`, as the peers here)'}; ${meta.provisioned.perch}.`);
  for (const s of SERVERS.slice(1)) L.push(`- ${s.title} ${meta.versions[s.name] ?? '?'} (Debian), ${s.storage === 'sql' ? (s.server === 'ejabberd' ? '`default_db: sql` and `auth_method: sql` on the same PostgreSQL (its database made from /usr/share/ejabberd/sql/pg.sql)' : '`storage = "sql"` on the same PostgreSQL') : s.storage}, ${s.chatOnly ? 'every one-to-one message archived (`mod_mam` `default: always`, its database\'s `archive` table; chat cases only)' : 'no one-to-one archiving'}, started by a copy of \`../shared/bench/peers/${s.server}.sh\` with c2s on ${s.port}; ${meta.provisioned[s.name]}.`);
  L.push(`- Each case runs on a freshly started server process (same data), servers in turn. Before each case the run waited (up to ${QUIET_WAIT_S} s) for the machine to be below ${QUIET_PCT} % busy, and repeated a case that failed or during which other jobs took more than ${NOISY_PCT} % of a core (up to ${RETRIES} more times), keeping the quietest attempt.`);
  L.push('- Latency is end to end: for logins, TCP connect → reply to a ping sent right after the initial presence; for chat, sender\'s write → recipient\'s parse. CPU cells are % of one core over the measured phase (200% = both cores): the server process; "db", the PostgreSQL backends of its database (by pid, from their process titles); "redis", its Redis server (INFO cpu); "other", what other jobs and the kernel took. The cost per operation counts server + db + redis. Ratios are Perch ÷ peer: above 1 is better for rates, below 1 for latency, memory and CPU.', '');
  L.push('```sh', 'node bench/run.mjs                 # this section (npm run bench: the whole page)', 'node bench/run.mjs --quick --no-docs   # smoke run', 'node bench/run.mjs --profile --no-prosody   # with a CPU profile of Perch per case',
    `node bench/xmppload.mjs --scenario login --port ${PERCH_PORT} --domain ${DOMAIN} --users ${N_LOGIN} --concurrency 50 --server-pid PID --db-name DB --redis-port P --scram-cache /tmp/scram.json`,
    `node bench/xmppload.mjs --scenario chat --port ${PERCH_PORT} --domain ${DOMAIN} --pairs ${PAIRS} --window 10 --messages 40 --server-pid PID --db-name DB --redis-port P`, '```', '');
  L.push(targetsData('xmpp', targets(results)), '');
  L.push(`| case | metric | ${SERVERS.map((s) => s.title).join(' | ')} | ${SERVERS.slice(1).map((s) => `Perch / ${s.title}`).join(' | ')} |`);
  L.push(`|---|---|${SERVERS.map(() => '---|').join('')}${SERVERS.slice(1).map(() => '---|').join('')}`);
  for (const [tag] of CASES) {
    const R = Object.fromEntries(SERVERS.map((s) => [s.name, results[s.name][tag]]));
    rowsFor(tag, R).forEach((r, i) => L.push(`| ${i === 0 ? `**${title(tag)}**` : ''} | ${r.join(' | ')} |`));
  }
  L.push('');
  const errors = [];
  for (const s of SERVERS) for (const [tag] of CASES) {
    const r = results[s.name][tag];
    if (r?.error) errors.push(`${s.title}, ${tag}: ${r.error}`);
    else if (r?.result?.errors?.length) errors.push(`${s.title}, ${tag}: \`${r.result.errors[0].replace(/`/g, "'").slice(0, 300)}\``);
  }
  if (errors.length) { L.push('First errors:', ''); for (const e of errors) L.push(`- ${e}`); L.push(''); }
  if (parser) {
    L.push('### Stream parser (bench/parser.mjs)', '');
    L.push(`${parser.input.description}: ${(parser.input.bytes / 1048576).toFixed(1)} MiB, ${big(parser.input.stanzas)} stanzas, fed in ${parser.input.chunk / 1024} KiB chunks; best of ${parser.input.reps} runs after warm-up, one process.`, '');
    L.push('| parser | MB/s | stanzas/s | vs XmlStreamParser |', '|---|---|---|---|');
    const ours = parser.results.find((r) => r.parser.startsWith('XmlStreamParser'));
    for (const r of parser.results) L.push(`| ${r.parser} | ${fmt(r.mb_per_s, 0)} | ${big(r.stanzas_per_s)} | ${ours ? (r.mb_per_s / ours.mb_per_s).toFixed(2) + '×' : ''} |`);
    L.push('');
  }
  if (profiles.length) {
    L.push('### Perch CPU profile (self time, top frames)', '');
    for (const [tag, frames, byPlace] of profiles) {
      L.push(`**${tag}** — by place: ${byPlace.join(', ')}`, '', '| self % | ms | frame |', '|---|---|---|');
      for (const f of frames.slice(0, 10)) L.push(`| ${f.self_pct} | ${f.self_ms} | \`${f.frame}\` |`);
      L.push('');
    }
  }
  L.push('<!-- xmpp:end -->');
  return L.join('\n');
}

// ------------------------------------------------------------------------------------------------

async function runCase(srv, tag, caseArgv, opts) {
  return measureQuietest(async () => {
    const cache = path.join(WORK, `scram-${srv.name}.json`);
    if (opts?.coldCache) fs.rmSync(cache, { force: true });
    let pid;
    try { pid = await srv.start(tag); } catch (e) { log(`    !! ${srv.name} did not start: ${e.message}`); await srv.stop().catch(() => {}); return { error: `start: ${e.message}` }; }
    try {
      return await xmppload(srv.name, tag, [...caseArgv, '--port', srv.port, '--domain', DOMAIN, '--server-pid', pid, '--scram-cache', cache, ...srv.storageArgs()]);
    } finally {
      await srv.stop();
    }
  }, {
    retries: RETRIES, noisyPct: NOISY_PCT, quiet: { maxWaitS: QUIET_WAIT_S, quietPct: QUIET_PCT }, log,
    before: EMBEDDED ? null : () => pgAdmin('CHECKPOINT').catch(() => {}),
  });
}

function writeDocs(meta, results, parser, profiles) {
  writeDocsSection(ROOT, section(meta, results, parser, profiles), 'xmpp', 'bench/run.mjs', log);
  writeTargets(ROOT, log);
}

/** --report-only FILE: rewrites the section from a run's summary line (no server is started). */
function reportOnly(file) {
  const line = fs.readFileSync(file, 'utf8').trim().split('\n').filter((l) => l.includes('"meta"')).pop();
  if (!line) throw new Error(`${file} holds no run summary`);
  const { meta, results, parser, profiles } = JSON.parse(line);
  writeDocs(meta, results, parser, profiles ?? []);
}

let shutdown = null;
function shutdownAll() {
  shutdown ??= (async () => {
    for (const s of SERVERS) await s.shutdown().catch((e) => log(`${s.name} shutdown: ${e.message}`));
    await redis?.stop().catch((e) => log(`redis stop: ${e.message}`));
    fs.rmSync(WORK, { recursive: true, force: true });
  })();
  return shutdown;
}

async function main() {
  if (argValue('--report-only')) return reportOnly(argValue('--report-only'));
  if (!fs.existsSync(path.join(ROOT, 'dist/src/cli.js'))) throw new Error('build Perch first: npm run build');
  for (const s of SERVERS.slice(1)) if (!s.version()) throw new Error(`${s.name} is not installed (Debian package ${s.name}); or pass --no-${s.name}`);
  fs.mkdirSync(path.dirname(RAW), { recursive: true });
  fs.writeFileSync(RAW, '');
  const t0 = Date.now();
  const commit = (() => { try { return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim(); } catch { return '?'; } })();
  const meta = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? '?',
    memGiB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(), node: process.version, loadavg: os.loadavg().map((v) => v.toFixed(2)).join(' '),
    perchVersion: perch.version(), commit,
  };
  log(`xmpp bench: servers ${SERVERS.map((s) => s.name).join(', ')}; ${EMBEDDED ? 'embedded storage' : `PostgreSQL + Redis on ${redis.port}`}; work dir ${WORK}`);
  await redis?.start();
  for (const s of SERVERS) {
    log(`==== ${stamp()} provisioning ${s.name}`);
    await s.provision();
    await s.stop();
  }
  const results = Object.fromEntries(SERVERS.map((s) => [s.name, {}]));
  for (const [tag, caseArgv, opts] of CASES) {
    for (const s of SERVERS) if (!(s.chatOnly && isLogin(tag))) results[s.name][tag] = await runCase(s, tag, caseArgv, opts);
  }
  Object.assign(meta, {
    minutes: Math.round((Date.now() - t0) / 60000), argv, db: PG_DB,
    provisioned: Object.fromEntries(SERVERS.map((s) => [s.name, s.provisioned])),
    versions: Object.fromEntries(SERVERS.slice(1).map((s) => [s.name, s.version()])),
  });
  const profiles = [];
  for (const [tag, file] of perch.profiles) {
    if (!fs.existsSync(file)) continue;
    const { frames, byPlace } = topFrames(file);
    profiles.push([tag, frames, byPlace]);
    log(`perch profile, ${tag} (${file}):`);
    log(`    by place: ${byPlace.join(', ')}`);
    for (const f of frames.slice(0, 10)) log(`    ${String(f.self_pct).padStart(5)}%  ${f.frame}`);
  }
  log('---- parser');
  const parserOut = execFileSync(process.execPath, [path.join(BENCH, 'parser.mjs'), ...(QUICK ? ['--quick'] : [])], { encoding: 'utf8' });
  const parserLines = parserOut.trim().split('\n');
  for (const l of parserLines) if (!l.startsWith('{')) log(`    ${l}`);
  const parser = JSON.parse(parserLines.filter((l) => l.startsWith('{')).pop());
  fs.appendFileSync(RAW, `${JSON.stringify({ meta, results, parser, profiles })}\n`);
  if (WRITE_DOCS) writeDocs(meta, results, parser, profiles);
  for (const t of targets(results)) log(`target ${t.id}: ${t.value ?? 'not measured'} ${t.met === null ? '' : t.met ? '(met)' : '(NOT met)'}`);
  for (const [tag] of CASES) {
    const line = SERVERS.map((s) => { const c = costPerOp(tag, results[s.name][tag]); return `${s.name} ${c ? fmt(c.total, isLogin(tag) ? 2 : 0) : '–'}`; }).join(', ');
    log(`${tag}: CPU per ${isLogin(tag) ? 'login (ms)' : 'message (µs)'} server + db + redis: ${line}`);
  }
  log(`raw JSON lines: ${path.relative(ROOT, RAW)}`);
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { log(`${sig}: stopping servers`); shutdownAll().finally(() => process.exit(130)); });
main().then(shutdownAll).catch(async (e) => {
  process.stderr.write(`bench: ${e?.stack ?? e}\n`);
  await shutdownAll();
  process.exit(1);
});
