#!/usr/bin/env node
// Multi-user chat and room-archive benchmarks: Perch, Prosody 0.12 and ejabberd 23.01 in the same run, all
// three on the same PostgreSQL, each case on a freshly started server process; writes its own section of
// docs/benchmarks.md (between <!-- muc:begin --> and <!-- muc:end -->).
//
//   node bench/muc.mjs                       everything (about 40 minutes on the 2-core box)
//   node bench/muc.mjs --quick               small sizes, a few minutes (smoke test)
//   node bench/muc.mjs --no-perch            peers only (also --no-prosody, --no-ejabberd)
//   node bench/muc.mjs --cases fanout,join,mam-small,mam-large    a subset (default: all)
//   node bench/muc.mjs --no-docs             do not touch docs/benchmarks.md
//   node bench/muc.mjs --report-only bench/results/tmp/muc-latest.jsonl   rewrite the section from a run's
//                                            raw results (pass the run's --quick / --no-* flags too)
//   --retries N, --quiet-wait S              repeats of a noisy or failed case (default 2), wait for a quiet
//                                            machine before each case (default 120 s); --shared-redis: see below
//   --reps N, --warmup N                     MAM: timed queries of each kind (default 100) after N untimed ones
//                                            (default 10, see S.warmup); the raw results keep every timing in order
//   --mam-rows N                             the large archive's size (default 1,000,000; the full-text target
//                                            is at 10,000,000: `node bench/muc.mjs --cases mam-large --mam-rows 10000000`)
//   --port-base B                            ports B+222 … B+581 (default 29000; see PORT_BASE)
//   --keep-db                                Perch's database left behind after the run (to look at its plans)
//
// Before/after: two (or more) Perch builds in one run, Perch only, fan-out cases unless --cases says otherwise;
// writes the section between <!-- muc-compare:begin --> and <!-- muc-compare:end --> of docs/benchmarks.md:
//
//   npm run build && node bench/muc.mjs --compare ../wt/baseline --cases fanout,join
//
//   --compare DIR[:LABEL]      DIR (a checkout with dist/ built, or its dist/) as "before", this checkout as "after"
//   --perch-dist DIR[:LABEL]   instead: each build named, in order (repeatable; the ratio is last ÷ first)
//   --rounds N                 every case N times per build, the builds' order alternating (A,B then B,A; default 3);
//                              cells are medians with the range; retries are off (--retries N turns them on)
//   bench/deliver.mjs takes the same --compare / --perch-dist and times the local delivery step alone, in process.
//   The baseline of the delivery change (commit 0338df1), once:
//     git worktree add ../wt/baseline 0338df1 && (cd ../wt/baseline && npm ci && npm run build)
//
// A category-governed room beside a plain one (persistent chat, issue 8): this checkout twice, "plain" (no
// category: today's XEP-0045 service) and "governed" (before the load, the CLI puts the bench users in the
// group bench-users and makes a category bench allowing that group, so every room the load creates is
// created in it; right after each creation the CLI sets the room's members to group:bench-users, through
// bench/pchat-governed-hook.mjs loaded into the load generator), same rounds as --compare; writes the section
// between <!-- pchat-muc:begin --> and <!-- pchat-muc:end -->:
//
//   npm run build && node bench/muc.mjs --governed --cases fanout,join
//
// Compliance capture on and off (issue 10): three builds, "main" (DIR: the build before capture, e.g. a checkout
// of the base commit with dist/ built), "off" and "on" (this checkout; "on" with the compliance configuration
// stored as enabled before the server starts), same rounds as --compare; writes the section between
// <!-- compliance-muc:begin --> and <!-- compliance-muc:end -->:
//
//   npm run build && node bench/muc.mjs --compliance DIR --cases fanout-1x100-r0.5,fanout-1x100-sat
//
// --cases takes groups (fanout, join, mam-small, mam-large) or case tags. Ports: --port-base, or PERCH_BENCH_C2S_PORT,
// PERCH_BENCH_METRICS_PORT and PERCH_BENCH_REDIS_PORT for Perch's c2s, metrics and private Redis ports.
// Cost: CPU of each server, of the PostgreSQL backends of its database and (Perch) of its private Redis, metered
// by bench/resources.mjs; before each case the run waits for a quiet machine and repeats noisy cases.
//
// Load: the shared xmppbench (../shared/bench/xmppbench.mjs, scenarios muc-fanout and join-history, same
// parameters as ../shared/bench/run-peers.sh) and bench/mam-query.mjs (timed MAM queries on an archive that
// bench/archive-load.mjs bulk-loads straight into each server's own tables).
// Perch: a copy of dist/ on PostgreSQL (fresh database on 127.0.0.1:5432, dropped after) and Redis (a private
// redis-server on 127.0.0.1:29379, see below), c2s 127.0.0.1:29222. Prosody and ejabberd (Debian packages): copies of
// ../shared/bench/peers/*.sh and their config templates with ports, node name, state directory and database names
// moved to this run's own (bench/peers.mjs; c2s 29322 and 29522; databases perch_bench_PID_prosody and
// perch_bench_PID_ejabberd, dropped after).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { waitPort, portFree, createBenchAccounts, writeDocsSection, startPerchProcess, snapshotDist, perchNodeFlags } from './lib.mjs';
import { PrivateRedis, measureQuietest, startCommitProbe, serverHistograms } from './resources.mjs';
import { peerServer } from './peers.mjs';
import { targetsData, writeTargets } from './targets.mjs';
import { fmt, big, ratio, median, summarizeError, cpuPerDelivery, compareDocs } from './muc-compare.mjs';
import { generateArchive, captureTemplate, clearRoomArchive, loadArchive, LOAD_DESCRIPTION, TEMPLATE, FT_RARE, FT_COMMON, SENDERS, VOCABULARY } from './archive-load.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const argv = process.argv.slice(2);
const args = new Set(argv);
const argValue = (name) => { const i = argv.indexOf(name); return i === -1 ? null : argv[i + 1]; };
const QUICK = args.has('--quick');
const WRITE_DOCS = !args.has('--no-docs');
const XB = process.env.XMPPBENCH_DIR ?? path.resolve(ROOT, '..', 'shared', 'bench');
const PEERS_DIR = path.join(XB, 'peers');
const PG_ADMIN_URL = process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/test';
// Perch's Redis keys and channels carry a fixed prefix, so every Perch process on one Redis joins one cluster:
// another Perch serving bench.local on the shared 127.0.0.1:6379 (a test or another benchmark) shares its
// session table and its routing traffic (a first run on the shared Redis, while another Perch for bench.local
// was up, lost 30 of 100 room joins). The run therefore starts its own redis-server (same Debian binary, no
// persistence) on 127.0.0.1:29379, unless --shared-redis or PERCH_BENCH_REDIS says otherwise.
// Ports: --port-base B (or PERCH_BENCH_PORT_BASE; default 29000) puts Perch's c2s on B+222, its metrics on
// B+280, its private Redis on B+379, Prosody on B+322 (and B+347/369/380/381), ejabberd on B+522 (and B+569).
const PORT_BASE = Number(argValue('--port-base') ?? process.env.PERCH_BENCH_PORT_BASE ?? 29000);
const PRIVATE_REDIS_PORT = Number(process.env.PERCH_BENCH_REDIS_PORT ?? PORT_BASE + 379);
const SHARED_REDIS = args.has('--shared-redis');
const REDIS_URL = process.env.PERCH_BENCH_REDIS ?? (SHARED_REDIS ? 'redis://127.0.0.1:6379' : `redis://127.0.0.1:${PRIVATE_REDIS_PORT}`);
// Its CPU is Perch's (nothing else talks to it); a shared Redis serves others too and is not metered.
const privateRedis = process.env.PERCH_BENCH_REDIS || SHARED_REDIS ? null : new PrivateRedis(PRIVATE_REDIS_PORT, null);
// Databases of this run: perch_bench_PID_muc (Perch; _muc_N for compared builds), _prosody, _ejabberd, and
// _probe (PostgreSQL's own commit latency, timed beside the fan-out cases).
const DB_PREFIX = `perch_bench_${process.pid}`;
const pgUrl = (db) => PG_ADMIN_URL.replace(/\/[^/]*$/, `/${db}`);
const DOMAIN = 'bench.local';
const MUC = `conference.${DOMAIN}`;
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-muc-bench-'));
if (privateRedis) privateRedis.dir = WORK;
// --compare / --perch-dist: Perch builds against each other, fan-out cases by default (see BUILDS)
const GOVERNED = args.has('--governed');
const COMPLIANCE = argValue('--compliance');
const COMPARE = argv.includes('--compare') || argv.includes('--perch-dist') || GOVERNED || COMPLIANCE !== null;
const RAW = path.join(BENCH, 'results', 'tmp', `muc-${GOVERNED ? 'governed-' : COMPLIANCE ? 'compliance-' : COMPARE ? 'compare-' : ''}${QUICK ? 'quick' : 'latest'}.jsonl`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stdout.write(`${s}\n`);
const stamp = () => new Date().toISOString().slice(11, 19);

// sizes: the peers' table (../shared/bench/results/peers.md) unless --quick
const S = QUICK
  ? { bigRoom: 30, rooms: 10, occ: 5, joins: 40, archives: [2_000, 50_000], reps: 20 }
  : { bigRoom: 100, rooms: 50, occ: 20, joins: 200, archives: [20_000, 1_000_000], reps: 100 };
if (argValue('--archives')) S.archives = argValue('--archives').split(',').map(Number);
// --mam-rows N: the large archive's size (the full-text target is at 10,000,000: run by hand, about an hour)
if (argValue('--mam-rows')) S.archives[1] = Number(argValue('--mam-rows'));
if (argValue('--reps')) S.reps = Number(argValue('--reps'));
// Ten untimed queries of each kind before the timed ones, for every server: the load generator is a fresh
// process too, and its own code warms over its first queries. A fresh client against a server already
// warm took 4.1-10.1 ms for its first 12 last pages, against a p50 of 2.9 (2026-12-07, samples_ms): with
// one warm-up, the p99 of 100 timed the client's warm-up as much as the server's. The first query is still
// reported ("first").
S.warmup = Number(argValue('--warmup') ?? 10);
const N_USERS = Math.max(S.bigRoom, S.rooms * S.occ, S.joins, SENDERS + 1); // user1..N_USERS, plus user0 (owner)
const CASE_GROUPS = (argValue('--cases') ?? (COMPARE ? 'fanout' : 'fanout,join,mam-small,mam-large')).split(',');

// ------------------------------------------------------------------------------------------------
// the cases

const fanout = (tag, rooms, occ, rate, messages, drain) => ({
  tag, group: 'fanout', kind: 'xmppbench', rooms, occ, rate, messages,
  argv: ['--scenario', 'muc-fanout', '--rooms', rooms, '--occupants', occ, '--rate', rate, '--messages', messages, '--drain-ms', drain],
});
const CASES = [
  fanout(`fanout-1x${S.bigRoom}-r0.5`, 1, S.bigRoom, 0.5, 10, 30000),
  fanout(`fanout-1x${S.bigRoom}-sat`, 1, S.bigRoom, 4, 8, 45000),
  fanout(`fanout-${S.rooms}x${S.occ}-r0.25`, S.rooms, S.occ, 0.25, 5, 30000),
  fanout(`fanout-${S.rooms}x${S.occ}-sat`, S.rooms, S.occ, 2, 4, 45000),
  { tag: 'join-history-fresh', group: 'join', kind: 'xmppbench', argv: ['--scenario', 'join-history', '--joins', S.joins, '--concurrency', 10, '--history', 20, '--history-preload', 30] },
  { tag: `mam-${S.archives[0]}`, group: 'mam-small', kind: 'mam', size: S.archives[0], room: `archive-small@${MUC}` },
  { tag: `mam-${S.archives[1]}`, group: 'mam-large', kind: 'mam', size: S.archives[1], room: `archive-large@${MUC}`, joinAfter: true },
].filter((c) => CASE_GROUPS.includes(c.group) || CASE_GROUPS.includes(c.tag));

// ------------------------------------------------------------------------------------------------
// helpers


/** Runs a load script (xmppbench or mam-query), echoes its human lines, returns its JSON line (or {error}). */
function runScript(script, label, tag, argv, { timeoutS = 330, nodeArgs = [], env = {} } = {}) {
  return new Promise((resolve) => {
    const full = [script, ...argv.map(String), '--label', label, '--tag', tag, '--out', RAW];
    log(`---- ${stamp()} [${label}] ${tag}`);
    const child = spawn(process.execPath, [...nodeArgs, ...full], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, XB_MAX_SECONDS: String(timeoutS - 30), XMPPBENCH_DIR: XB, ...env } });
    const killer = setTimeout(() => child.kill('SIGKILL'), timeoutS * 1000);
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('exit', (code) => {
      clearTimeout(killer);
      const lines = out.trim().split('\n');
      for (const l of lines) if (!l.startsWith('{')) log(`    ${l}`);
      const json = lines.filter((l) => l.startsWith('{')).pop();
      let parsed = null;
      try { parsed = json ? JSON.parse(json) : null; } catch { /* reported below */ }
      if (code !== 0 || !parsed || parsed.error) {
        const why = parsed?.error ? String(parsed.error).split('\n')[0] : `exited with ${code}`;
        log(`    !! ${tag}: ${why}`);
        return resolve({ error: why, partial: parsed });
      }
      resolve(parsed);
    });
  });
}
const xmppbench = (label, tag, argv, opts) => runScript(path.join(XB, 'xmppbench.mjs'), label, tag, argv, opts);

let pgModule = null;
async function pgClient(url) {
  pgModule ??= (await import('pg')).default;
  const c = new pgModule.Client({ connectionString: url });
  await c.connect();
  return c;
}
async function pgAdmin(sql) {
  const c = await pgClient(PG_ADMIN_URL);
  try { await c.query(sql); } finally { await c.end(); }
}

// xmppbench's client library: rooms are created and the template message sent with the same code as the load
const xbLib = async (f) => import(pathToFileURL(path.join(XB, 'lib', f)).href);

// ------------------------------------------------------------------------------------------------
// servers

/**
 * One Perch build: `root` is a checkout with dist/ built and node_modules installed. Builds compared in one run
 * (--compare, --perch-dist) take the same ports in turn, each on its own database.
 */
const perchServer = ({ name, title, root, db, governed = false, compliance = false }) => ({
  name, title, root, db, proc: null, governed, compliance,
  port: Number(process.env.PERCH_BENCH_C2S_PORT ?? PORT_BASE + 222), metricsPort: Number(process.env.PERCH_BENCH_METRICS_PORT ?? PORT_BASE + 280),
  dir: path.join(WORK, name), config: path.join(WORK, `${name}.json`),
  version() { return JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version; },
  /** Its commit, and whether the server's own sources differ from it. */
  commit() {
    try {
      const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
      // the server's own sources only (this runner rewrites docs/, and bench/ is not part of the server)
      const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'storage', 'protocol', 'package.json'], { cwd: root, encoding: 'utf8' }).trim() !== '';
      return dirty ? `${head} + uncommitted changes` : head;
    } catch { return '?'; }
  },
  async provision() {
    if (!(await portFree(this.port))) throw new Error(`port ${this.port} is busy`);
    fs.mkdirSync(this.dir, { recursive: true });
    const cfg = {
      domain: DOMAIN, dataDir: this.dir, logLevel: 'warn', databaseUrl: pgUrl(this.db), redisUrl: REDIS_URL, workers: 1,
      listen: { c2s: { host: '127.0.0.1', port: this.port }, c2sDirectTls: null, component: null, websocket: null, websocketPlain: null, metrics: { host: '127.0.0.1', port: this.metricsPort }, upload: null },
      tls: { requireStartTls: false },
      limits: { authFailuresPerIp: 1_000_000, authFailuresPerAccount: 1_000_000, bytesPerSecond: 64 * 1024 * 1024, authTimeout: 120 },
      ping: { idleSeconds: 3600, timeoutSeconds: 60 },
      ...(process.env.PERCH_BENCH_CONFIG ? JSON.parse(process.env.PERCH_BENCH_CONFIG) : {}),
    };
    this.snapshot();
    const { openDataStores } = await import(path.join(this.dist, 'storage/open.js'));
    const { addUser } = await import(path.join(this.dist, 'src/accounts.js'));
    const { loadConfig, defaultConfig } = await import(path.join(this.dist, 'src/config.js'));
    // The peers run without flood limits (no mod_limits, c2s shaper none): lift Perch's per-occupant limit alike.
    const def = defaultConfig().muc;
    if (def && 'messagesPerSecond' in def) cfg.muc = { ...(cfg.muc ?? {}), messagesPerSecond: 1_000_000, messageBurst: 1_000_000 };
    await pgAdmin(`CREATE DATABASE ${this.db}`);
    this.created = true;
    fs.writeFileSync(this.config, JSON.stringify(cfg, null, 2));
    const config = loadConfig(this.config, {});
    const t0 = Date.now();
    const stores = await openDataStores({ databaseUrl: pgUrl(this.db), dataDir: this.dir });
    await createBenchAccounts(addUser, stores, DOMAIN, N_USERS, config.scramIterations);
    if (this.compliance) await stores.compliance.setConfig({ ...(await stores.compliance.getConfig()), enabled: true });
    await stores.db.close();
    this.provisioned = `${N_USERS + 1} accounts created by \`addUser\` in ${((Date.now() - t0) / 1000).toFixed(1)} s before the server starts (${config.scramIterations} SCRAM iterations)`;
    if (this.compliance) this.provisioned += '; compliance capture enabled in the database before the server starts (every join, leave, post and history read recorded in the same commit)';
    if (this.governed) {
      // the server is stopped: the CLI writes the database itself
      const users = Array.from({ length: N_USERS + 1 }, (_, i) => `user${i}@${DOMAIN}`).join(',');
      this.cli('group', 'add', 'bench-users', '--members', users);
      this.cli('category', 'add', 'bench', '--allowed', 'group:bench-users', '--creators', 'group:bench-users');
      this.provisioned += `; governed: group bench-users = the ${N_USERS + 1} accounts, category bench (allowed and creators: group:bench-users) made by the CLI; each room the load creates is created in it through the owner form (closed, the creator manager) and its members set to group:bench-users by \`perch room set ROOM --members group:bench-users\` right after`;
    }
  },
  /**
   * The archive's partitions from `from` on, made before a bulk load of old history as `perch import`
   * makes them: rows older than the partitions would land in the default one, which the next start
   * moves in one transaction (at 10,000,000 rows, 2.7 years of history, past the runner's 30 s wait).
   */
  async partitionsFrom(from) {
    const { openPostgres } = await import(path.join(this.dist, 'storage/db-postgres.js'));
    const { ensureArchivePartitions } = await import(path.join(this.dist, 'storage/archive-partitions.js'));
    const db = await openPostgres(pgUrl(this.db));
    try { await ensureArchivePartitions(db, { from }); } finally { await db.close(); }
  },
  /** Runs the CLI of this build on its configuration (through the admin socket when the server runs). */
  cli(...a) {
    return execFileSync(process.execPath, [path.join(this.dist, 'src/cli.js'), '--config', this.config, ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  },
  /** What the load generator needs for this build: the hook that governs each room it creates. */
  loadOptions() {
    // the private Redis's CPU is Perch's: the load generator's meter adds it (bench/storage-cpu-hook.mjs)
    const nodeArgs = privateRedis ? ['--import', pathToFileURL(path.join(BENCH, 'storage-cpu-hook.mjs')).href] : [];
    const env = privateRedis ? { PERCH_BENCH_METER_REDIS_PORT: String(privateRedis.port) } : {};
    if (!this.governed) return { nodeArgs, env };
    return { nodeArgs: [...nodeArgs, '--import', pathToFileURL(path.join(BENCH, 'pchat-governed-hook.mjs')).href], env: { ...env, PERCH_GOVERNED_CLI: JSON.stringify([process.execPath, path.join(this.dist, 'src/cli.js'), '--config', this.config]) } };
  },
  /** A copy of dist/ taken once, so that a rebuild during the run cannot change the server between cases. */
  snapshot() {
    this.dist = snapshotDist(root, path.join(WORK, `${name}-dist`));
  },
  async start() {
    ({ proc: this.proc, exited: this.exited } = await startPerchProcess([...perchNodeFlags(this.dist), path.join(this.dist, 'src/cli.js'), '--config', this.config, 'start'], this.port, {
      stop: (proc, exited) => { this.proc = proc; this.exited = exited; return this.stop(); }, log,
    }));
    await sleep(500);
    return this.proc.pid;
  },
  /**
   * The server's own commit histograms since this process started (bucket upper bounds for the percentiles):
   * perch_muc_commit_seconds (how long room messages waited for their archive commit before fan-out) and
   * perch_archive_commit_seconds (the archive writer's commits), those it exports.
   */
  async commitWait() {
    const h = await serverHistograms(this.metricsPort, ['perch_muc_commit_seconds', 'perch_archive_commit_seconds']);
    return Object.keys(h).length ? h : null;
  },
  async stop() {
    if (!this.proc) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc?.kill('SIGKILL'), 15000);
    await this.exited;
    clearTimeout(t);
    this.proc = null;
  },
  async shutdown() {
    await this.stop();
    if (this.created && argv.includes('--keep-db')) log(`kept ${this.db} (--keep-db): drop it with DROP DATABASE ${this.db}`);
    else if (this.created) await pgAdmin(`DROP DATABASE IF EXISTS ${this.db} WITH (FORCE)`).catch((e) => log(`drop ${this.db}: ${e.message}`));
  },
});
const perch = perchServer({ name: 'perch', title: 'Perch', root: ROOT, db: `${DB_PREFIX}_muc` });

/**
 * Builds to compare (--compare DIR[:LABEL] is DIR as "before" and this checkout as "after"; --perch-dist
 * DIR[:LABEL], repeatable, names each build). DIR is a checkout root or its dist/ directory.
 */
const BUILDS = (() => {
  const specs = [];
  argv.forEach((a, i) => {
    if (a === '--compare') specs.push([argv[i + 1], 'before'], [ROOT, 'after']);
    else if (a === '--perch-dist') specs.push([argv[i + 1], null]);
  });
  if (COMPLIANCE) {
    return [
      perchServer({ name: 'main', title: 'main', root: path.resolve(COMPLIANCE), db: `${DB_PREFIX}_muc_0` }),
      perchServer({ name: 'off', title: 'off', root: ROOT, db: `${DB_PREFIX}_muc_1` }),
      perchServer({ name: 'on', title: 'on', root: ROOT, db: `${DB_PREFIX}_muc_2`, compliance: true }),
    ];
  }
  if (GOVERNED) return [perchServer({ name: 'plain', title: 'plain', root: ROOT, db: `${DB_PREFIX}_muc_0` }), perchServer({ name: 'governed', title: 'governed', root: ROOT, db: `${DB_PREFIX}_muc_1`, governed: true })];
  return specs.map(([spec, defaultLabel], i) => {
    if (!spec) throw new Error('--compare and --perch-dist take DIR[:LABEL]');
    const colon = spec.lastIndexOf(':');
    const hasLabel = colon > 0 && !spec.slice(colon + 1).includes('/');
    let root = path.resolve(hasLabel ? spec.slice(0, colon) : spec);
    const label = hasLabel ? spec.slice(colon + 1) : defaultLabel ?? path.basename(root);
    if (!/^[A-Za-z0-9_-]+$/.test(label)) throw new Error(`build label ${JSON.stringify(label)}: letters, digits, - and _ only`);
    if (path.basename(root) === 'dist' && fs.existsSync(path.join(root, 'src/cli.js'))) root = path.dirname(root);
    if (!fs.existsSync(path.join(root, 'dist/src/cli.js'))) throw new Error(`${root}: no dist/src/cli.js (build it: npm ci && npm run build)`);
    return perchServer({ name: label, title: label, root, db: `${DB_PREFIX}_muc_${i}` });
  });
})();
if (COMPARE && !BUILDS.length) throw new Error('no build to compare');
if (new Set(BUILDS.map((b) => b.name)).size !== BUILDS.length) throw new Error('two builds with the same label');

const peerOptions = (name) => ({
  work: WORK, peersDir: PEERS_DIR, portBase: PORT_BASE, db: `${DB_PREFIX}_${name}`, storage: 'sql', pgAdmin, log,
  register: (port) => xmppbench(name, 'register', ['--scenario', 'register', '--port', port, '--domain', DOMAIN, '--users', N_USERS, '--concurrency', 20]),
});
const prosody = peerServer('prosody', peerOptions('prosody'));
const ejabberd = peerServer('ejabberd', peerOptions('ejabberd'));

// Comparing Perch builds measures Perch only.
const SERVERS = COMPARE ? BUILDS : [
  ...(args.has('--no-perch') ? [] : [perch]),
  ...(args.has('--no-prosody') ? [] : [prosody]),
  ...(args.has('--no-ejabberd') ? [] : [ejabberd]),
];
const isPerch = (s) => s === perch || BUILDS.includes(s);

// ------------------------------------------------------------------------------------------------
// archive rooms: created through XMPP, template row captured, then bulk-loaded with the server stopped

/** Creates the room (persistent, public, open, archived) and has user<TEMPLATE.account> send the template message. */
async function prepareRoom(srv, room) {
  const { makeClient, joinRoom, leaveRoom } = await xbLib('ops.mjs');
  const { createRoom } = await xbLib('muc.mjs');
  const conn = { host: '127.0.0.1', port: srv.port, domain: DOMAIN, tls: 'none', mech: 'SCRAM-SHA-1', userPrefix: 'user', password: 'bench-{n}', timeoutMs: 30000 };
  const owner = makeClient(conn, 0, { resource: 'owner' });
  await owner.login();
  const cfg = await createRoom(owner, room, { archive: true });
  await owner.close();
  const c = makeClient(conn, TEMPLATE.account);
  await c.login();
  await joinRoom(c, room, TEMPLATE.nick, { maxstanzas: 0 });
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${srv.name}: template message not reflected by ${room}`)), 15000);
    c.onMessage = (el) => { if (el.getChildText('body') === TEMPLATE.body) { clearTimeout(t); resolve(); } else if (el.attrs.type === 'error') { clearTimeout(t); reject(new Error(`${srv.name}: template message bounced: ${el.toString().slice(0, 300)}`)); } };
    c.send(`<message to='${room}' type='groupchat' id='${TEMPLATE.id}'><body>${TEMPLATE.body}</body></message>`);
  });
  leaveRoom(c, room, TEMPLATE.nick);
  await c.close();
  const pg = await pgClient(pgUrl(srv.db));
  try {
    const template = await captureTemplate(pg, srv.name, room);
    return { template, applied: cfg.applied };
  } finally { await pg.end(); }
}

const archives = new Map(); // size -> generated archive (the same rows for every server)
function archiveOf(size) {
  if (!archives.has(size)) {
    const t0 = Date.now();
    archives.set(size, generateArchive(size));
    log(`generated a ${size.toLocaleString('en-US')}-message archive in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  return archives.get(size);
}

// ------------------------------------------------------------------------------------------------
// report


function cpuCell(r) {
  const m = r?.resources;
  if (!m) return '–';
  const db = (m.db_cpu_pct !== undefined && m.db_cpu_pct !== null ? ` + db ${fmt(m.db_cpu_pct, 0)}%` : '')
    + (m.redis_cpu_pct !== undefined && m.redis_cpu_pct !== null ? ` + redis ${fmt(m.redis_cpu_pct, 0)}%` : '');
  return `${fmt(m.server_cpu_pct, 0)}%${db} / ${fmt(m.loadgen_cpu_pct, 0)}% / ${fmt(m.other_cpu_pct, 0)}%`;
}
const failed = (r) => (r && r.error ? '✗ failed (below)' : null);

/** rows: [metric, cell per server, ratio P/E, ratio P/Prosody] */
function rowsFor(c, res) {
  const names = SERVERS.map((s) => s.name);
  const R = Object.fromEntries(names.map((n) => [n, res[n]?.[c.tag]]));
  const rows = [];
  // num returns one figure, or [p50, p99] for latencies (both ratios shown)
  const row = (metric, cell, num) => {
    const cells = names.map((n) => failed(R[n]) ?? (R[n] ? cell(R[n]) : '–'));
    const v = (n) => (R[n] && !R[n].error && num ? num(R[n]) : null);
    const rat = (peerName) => {
      if (!num) return '';
      const a = v('perch'), b = v(peerName);
      if (Array.isArray(a) || Array.isArray(b)) return `${ratio(a?.[0], b?.[0])} / ${ratio(a?.[1], b?.[1])}`;
      return ratio(a, b);
    };
    rows.push([metric, ...cells, rat('ejabberd'), rat('prosody')]);
  };
  const lat = (l) => (l && l.n ? `${fmt(l.p50)} / ${fmt(l.p99)} / ${fmt(l.max, 0)}` : '–');
  if (c.kind === 'xmppbench' && c.group === 'fanout') {
    row('delivered/s', (r) => big(r.delivered_per_s), (r) => r.delivered_per_s);
    row('latency p50 / p99 / max ms', (r) => lat(r.latency_ms), (r) => [r.latency_ms?.p50, r.latency_ms?.p99]);
    row('delivered / expected, order', (r) => `${r.delivered}/${r.expected_deliveries} ${r.in_order_complete ? '✓ in order' : `✗ (lost ${r.lost}, dup/reorder ${r.dup_or_reorder}, gaps ${r.seq_gaps})`}`);
    row('CPU server (+ its db backends + its redis) / load generator / other', cpuCell);
    const per = (r) => cpuPerDelivery(r);
    row('server + db + redis CPU µs per delivery', (r) => fmt(per(r), 0), per);
    row('PostgreSQL\'s own commit (probe: INSERT in autocommit beside the load) p50 / p99 / max ms', (r) => lat(r.pg_commit_probe));
    if (names.includes('perch')) {
      const hist = (h) => (h ? `≤ ${fmt(h.p50_le_ms)} / ≤ ${fmt(h.p99_le_ms)} / ${fmt(h.mean_ms, 2)} (${big(h.n)})` : '–');
      row('Perch: wait for the archive commit before fan-out, p50 / p99 (bucket bounds) / mean ms', (r) => hist(r.commit_wait?.perch_muc_commit_seconds));
      row('Perch: archive writer commits (perch_archive_commit_seconds) p50 / p99 (bucket bounds) / mean ms', (r) => hist(r.commit_wait?.perch_archive_commit_seconds));
    }
  } else if (c.group === 'join') {
    row('join→subject p50 / p99 / max ms', (r) => lat(r.join_to_subject_ms), (r) => [r.join_to_subject_ms?.p50, r.join_to_subject_ms?.p99]);
    row('join→self-presence p50 / p99 ms', (r) => `${fmt(r.join_to_self_presence_ms?.p50)} / ${fmt(r.join_to_self_presence_ms?.p99)}`);
    row('joins ok, history complete, joins/s', (r) => `${r.joins_ok}/${r.joins_ok + r.failures}, ${r.history_complete}/${r.joins_ok + r.failures}, ${fmt(r.joins_per_s, 0)}/s`);
    row('CPU server (+ db) / load generator / other', cpuCell);
  } else if (c.kind === 'mam') {
    const q = (name) => (r) => r.queries?.[name];
    const cell = (name) => (r) => {
      const x = q(name)(r);
      if (!x) return '–';
      if (x.unsupported) return 'unsupported';
      if (x.not_filtered) return 'not filtered (see below)';
      if (x.error) return `error: ${String(x.error).slice(0, 80)}`;
      return `${fmt(x.p50)} / ${fmt(x.p99)} (first ${fmt(x.first_ms ?? x.per_page?.max)})`;
    };
    const pp = (name) => (r) => { const x = q(name)(r); return x && x.p50 !== undefined ? [x.p50, x.p99] : null; };
    row('load: rows, insert s + VACUUM ANALYZE s', (r) => (r.load ? `${big(r.load.rows)}, ${fmt(r.load.insert_s)} + ${fmt(r.load.vacuum_s)} s` : '–'));
    row('last page of 50 (RSM `<before/>`): p50 / p99 ms', cell('last_page'), pp('last_page'));
    row('page back 10 × 50, per page: p50 / p99 ms', (r) => { const x = q('page_back')(r); return x?.per_page ? `${fmt(x.per_page.p50)} / ${fmt(x.per_page.p99)} (walk ${fmt(x.walk_total.p50, 0)})` : x?.error ? `error: ${x.error}` : '–'; }, (r) => { const x = q('page_back')(r)?.per_page; return x ? [x.p50, x.p99] : null; });
    row("'with' one sender, last page: p50 / p99 ms", (r) => { const s = cell('with')(r); const w = q('with')(r)?.with; return w ? `${s}, with=${w.includes('/') ? 'room/nick' : 'real JID'}` : s; }, pp('with'));
    row('start/end window (1,000 msgs), first page: p50 / p99 ms', cell('window'), pp('window'));
    row(`full text, 1 in ${FT_RARE.every} msgs, last page: p50 / p99 ms`, cell('fulltext'), pp('fulltext'));
    row(`full text, 1 in ${FT_COMMON.every} msgs, last page: p50 / p99 ms`, cell('fulltext_common'), pp('fulltext_common'));
    row('CPU over the queries: server (+ db) / client / other', cpuCell);
    if (c.joinAfter) {
      const J = Object.fromEntries(names.map((n) => [n, res[n]?.[`${c.tag}-join`]]));
      const cells = names.map((n) => failed(J[n]) ?? (J[n]?.join_to_subject_ms ? `${lat(J[n].join_to_subject_ms)}; history ${J[n].history_complete}/${J[n].joins_ok + J[n].failures}` : '–'));
      const v = (n, k) => (J[n] && !J[n].error ? J[n].join_to_subject_ms?.[k] : null);
      const rat = (b) => `${ratio(v('perch', 'p50'), v(b, 'p50'))} / ${ratio(v('perch', 'p99'), v(b, 'p99'))}`;
      rows.push([`join this room with 20 history (${S.joins} joins, 30 messages sent first): join→subject p50 / p99 / max ms`, ...cells, rat('ejabberd'), rat('prosody')]);
    }
  }
  return rows;
}

function title(c) {
  if (c.group === 'fanout') {
    const { rooms, occ, rate, messages } = c;
    const where = rooms === 1 ? `1 room × ${occ}` : `${rooms} rooms × ${occ}`;
    const offered = `${big(rooms * occ * occ * rate)} deliveries/s`;
    return c.tag.endsWith('-sat') ? `MUC fan-out, ${where}, saturation (offered ${offered} for ${messages / rate} s)` : `MUC fan-out, ${where}, ${rate} msg/s each (offered ${offered})`;
  }
  if (c.group === 'join') return `Join with 20 messages of history (fresh room, 30 messages sent; ${S.joins} joins, 10 at a time)`;
  const m = /^mam-(\d+)$/.exec(c.tag);
  if (m) return `MAM on a room archive of ${big(Number(m[1]))} messages (bulk-loaded; ${S.reps} reps per query after ${S.warmup === 1 ? 'one warm-up' : `${S.warmup} warm-ups`})`;
  return c.tag;
}

/**
 * Perch's targets this runner measures: {id, label, value, met} (met null when this run cannot decide it:
 * another size, or not measured); rows with an id are the page's targets (bench/targets.mjs).
 */
function targets(res) {
  const P = res.perch ?? {}, E = res.ejabberd ?? {};
  const ok = (r) => r && !r.error;
  const out = [];
  const push = (id, label, value, met) => out.push({ id, label, value, met: value === null ? null : met });
  // fan-out at 5,000 deliveries/s against PostgreSQL's own commit p99 (the probe beside the same case)
  const paced = CASES.filter((x) => x.group === 'fanout' && !x.tag.endsWith('-sat'));
  const excess = [];
  for (const c of paced) {
    const r = ok(P[c.tag]) ? P[c.tag] : null;
    const p99 = r?.latency_ms?.p99, commit = r?.pg_commit_probe?.p99;
    const offered = c.rooms * c.occ * c.occ * c.rate;
    const v = p99 === undefined || p99 === null ? null
      : `p99 ${fmt(p99)} ms, PostgreSQL commit p99 ${fmt(commit)} ms${commit === null || commit === undefined ? '' : ` (+${fmt(p99 - commit)} ms)`}${offered === 5000 ? '' : ` at ${big(offered)}/s, not 5,000/s`}`;
    const met = offered === 5000 && commit !== null && commit !== undefined ? p99 - commit <= 2 && r.in_order_complete : null;
    push(null, `${title(c)}: p99 within 2 ms of PostgreSQL's commit p99`, v, met);
    if (v !== null) excess.push({ v, met, d: commit === null || commit === undefined ? Infinity : p99 - commit });
  }
  // the page's row: the worse of the paced cases
  if (excess.length) { const w = excess.reduce((a, b) => (b.d > a.d ? b : a)); push('fanout-5000', null, w.v, excess.some((x) => x.met === null) ? null : excess.every((x) => x.met)); }
  for (const c of CASES.filter((x) => x.group === 'fanout' && x.tag.endsWith('-sat'))) {
    const v = ok(P[c.tag]) && ok(E[c.tag]) ? P[c.tag].delivered_per_s / E[c.tag].delivered_per_s : null;
    // Both servers delivering what was offered (within 1 %): the ratio measures the load, not either server.
    const offered = c.rooms * c.occ * c.occ * c.rate;
    const unsaturated = v !== null && [P[c.tag], E[c.tag]].every((r) => r.in_order_complete && r.delivered_per_s >= 0.99 * offered);
    push(null, `${title(c)}: delivered/s ≥ 1.0× ejabberd`,
      v === null ? null : `${v.toFixed(2)}×${unsaturated ? ` (both delivered the offered ${big(offered)}/s: the load saturated neither)` : ''}`,
      unsaturated ? null : v !== null && v >= 1.0 && P[c.tag].in_order_complete);
  }
  const j = CASES.find((c) => c.group === 'join');
  if (j) {
    const v = ok(P[j.tag]) ? P[j.tag].join_to_subject_ms?.p99 ?? null : null;
    push('join-20', 'Join with 20 history messages: join→subject p99 ≤ 15 ms', v === null ? null : `${fmt(v)} ms`, v <= 15 && P[j.tag].history_complete === S.joins);
  }
  const mq = (c, name, k) => (ok(P[c.tag]) ? P[c.tag].queries?.[name]?.[k] ?? null : null);
  const large = CASES.find((c) => c.group === 'mam-large');
  if (large) {
    const at = (n) => (large.size === n ? '' : ` at ${big(large.size)}`);
    const v = mq(large, 'last_page', 'p99');
    push('mam-last-1m', `MAM last page at ${big(large.size)}: p99 ≤ 10 ms`, v === null ? null : `${fmt(v)} ms${at(1_000_000)}`, large.size === 1_000_000 ? v <= 10 : null);
    const f = mq(large, 'fulltext', 'p99');
    push('fulltext-10m', `MAM full text at ${big(large.size)}: p99 ≤ 50 ms`, f === null ? null : `${fmt(f)} ms${at(10_000_000)}`, large.size === 10_000_000 ? f <= 50 : null);
  }
  return out;
}

function section(meta, res) {
  const names = SERVERS.map((s) => s.name);
  const L = [];
  L.push('<!-- muc:begin -->', '## Multi-user chat and room archives (bench/muc.mjs)', '');
  const runArgs = meta.argv ?? argv;
  L.push(`Generated by \`node bench/muc.mjs${runArgs.length ? ` ${runArgs.join(' ')}` : ''}\` on ${meta.date} (${meta.minutes} min); this section is rewritten by each run of it (\`npm run bench\` runs every section).`, '');
  L.push(`- Machine: ${meta.cpus} × ${meta.cpuModel}, Linux ${meta.kernel}, Node ${meta.node}; load average before the run ${meta.loadavg}. Server, load generator, PostgreSQL and the kernel share the cores.`);
  for (const s of SERVERS) L.push(`- ${s.title} ${meta.versions[s.name] ?? '?'}: ${meta.descr[s.name]}; ${s.provisioned ?? ''}.`);
  L.push('- Every case runs on a freshly started server process (same data), servers one after the other per case, only one server running at a time. Peers\' parameters and figures: `../shared/bench/results/peers.md`; fan-out and join cases are the shared `xmppbench.mjs` with the same arguments as `run-peers.sh`.');
  L.push('- Archives: the same generated messages for every server, loaded straight into its own PostgreSQL tables with the server stopped (no XMPP ingest), then `VACUUM ANALYZE`, then the server started: '
    + `bodies of 4–24 words from a fixed vocabulary of ${VOCABULARY.length} words of team chat, skewed to the frequent ones; ${SENDERS} senders with skewed shares (the 'with' query targets one with ${S.archives.filter((n) => archives.has(n)).map((n) => `${archiveOf(n).expect.with.count.toLocaleString('en-US')} of ${n.toLocaleString('en-US')}`).join(', ') || '?'} messages); stamps 1–16 s apart (whole seconds) ending 10 minutes before the load; the word '${FT_RARE.word}' in exactly 1 message in ${FT_RARE.every} and '${FT_COMMON.word}' in 1 in ${FT_COMMON.every}. `
    + 'Each server\'s rows copy the row it wrote itself for one message sent through XMPP (the template), with body, nick, sender and ids replaced; the template row is deleted, so the room holds exactly N messages.');
  for (const s of SERVERS) L.push(`  - ${s.title}: ${LOAD_DESCRIPTION[s.name]}.`);
  const warmups = S.warmup === 1 ? 'one untimed warm-up ("first")' : `${S.warmup} untimed warm-ups (the first reported as "first")`;
  L.push(`- MAM timing (\`bench/mam-query.mjs\`): query IQ sent → result IQ received (all result messages come before it), one client that joined the room, queries one after another; ${warmups}, then the reps. Each reply is checked (page size, RSM count, stamps, sender, word present): a filter that a server ignores is reported as "not filtered", not timed.`);
  L.push('- Cells: latency p50 / p99 / max in ms; CPU in % of one core over the measured phase (200% = both cores), "+ db" = PostgreSQL backends of that server\'s database, "+ redis" = Perch\'s private Redis (INFO cpu). Fan-out cases also time PostgreSQL\'s own commits beside the load (a probe inserting one row in autocommit every 20 ms in a database of its own). Ratios are Perch ÷ peer (for latencies: p50 ratio / p99 ratio): above 1 is better for rates, below 1 for latency and CPU.');
  L.push(`- Other jobs share this host: before each case the runner waited (up to ${QUIET_WAIT_S} s) until the machine was below ${QUIET_PCT} % busy, and a case during which other jobs still took more than ${NOISY_PCT} % of a core (or that failed) was repeated, up to ${RETRIES} more times, keeping the quietest attempt; "other" in the CPU rows is what those jobs took during the kept attempt. Differences under ~10–15 % are noise.`, '');
  L.push('```sh', 'node bench/muc.mjs                     # all three servers, all cases (peers need the Debian packages prosody, lua-dbi-postgresql, ejabberd, erlang-p1-pgsql)', 'node bench/muc.mjs --quick             # smoke test, small sizes', 'node bench/muc.mjs --no-prosody --no-ejabberd --cases mam-small,mam-large', '```', '');
  const tgt = names.includes('perch') ? targets(res) : [];
  if (tgt.length) {
    L.push('### Perch targets', '', '| target | Perch | met |', '|---|---|---|');
    for (const t of tgt.filter((x) => x.label)) L.push(`| ${t.label} | ${t.value ?? 'not measured'} | ${t.met === null ? '–' : t.met ? 'yes' : '**no**'} |`);
    L.push('', targetsData('muc', tgt.filter((x) => x.id).map(({ id, value, met }) => ({ id, value, met }))), '');
  }
  L.push('### Figures', '');
  L.push(`| case | metric | ${SERVERS.map((s) => s.title).join(' | ')} | Perch / ejabberd | Perch / Prosody |`);
  L.push(`|---|---|${SERVERS.map(() => '---|').join('')}---|---|`);
  for (const c of CASES) {
    rowsFor(c, res).forEach((r, i) => L.push(`| ${i === 0 ? `**${title(c)}**` : ''} | ${r.join(' | ')} |`));
  }
  L.push('');
  const notes = [];
  const unfiltered = new Map(); // "server|query" -> [sizes, detail]
  for (const s of SERVERS) for (const c of CASES) {
    const r = res[s.name]?.[c.tag];
    if (r?.queries) {
      for (const [k, v] of Object.entries(r.queries)) {
        const detail = v.unsupported ? `unsupported: ${Object.entries(v.probes).map(([f, p]) => `\`${f}\` → ${p}`).join('; ')}` : v.not_filtered ? `not filtered: ${v.not_filtered}` : null;
        if (detail) {
          const key = `${s.title}|${k}`;
          const [sizes] = unfiltered.get(key) ?? [[]];
          unfiltered.set(key, [[...sizes, big(c.size)], detail]);
        } else if (v.error) notes.push(`${s.title}, ${c.tag}, ${k}: error — ${v.error}`);
      }
    }
    if (r?.error) notes.push(`${s.title}, ${c.tag}: failed — ${summarizeError(r.error)}`);
    else if (r?.failed_attempts?.length) notes.push(`${s.title}, ${c.tag}: ${r.failed_attempts.length} of ${r.attempts} attempts failed, figures from a later one — ${r.failed_attempts.map(summarizeError).join('; ')}`);
    const j = res[s.name]?.[`${c.tag}-join`];
    if (j?.error) notes.push(`${s.title}, ${c.tag}, join: failed — ${summarizeError(j.error)}`);
    else if (j?.failed_attempts?.length) notes.push(`${s.title}, ${c.tag}, join: ${j.failed_attempts.length} of ${j.attempts} attempts failed — ${j.failed_attempts.map(summarizeError).join('; ')}`);
  }
  for (const [key, [sizes, detail]] of unfiltered) {
    const [server, query] = key.split('|');
    notes.push(`${server}, ${query} (archives of ${sizes.join(' and ')}): ${detail}`);
  }
  if (notes.length) { L.push('What did not work in this run:', ''); for (const n of notes) L.push(`- ${n.replace(/\n/g, ' ')}`); L.push(''); }
  if (names.some((n) => n !== 'perch') && CASES.some((c) => c.kind === 'mam')) {
    L.push('Reading the MAM rows:', '');
    if (names.includes('prosody')) L.push("- Prosody 0.12's mod_muc_mam ignores `with` (its `with` column holds the stanza type; the module says so in a comment) and has no full-text search: both return the unfiltered last page, so no time is given for them. It sends no RSM `<count/>` for room archives.");
    if (names.includes('ejabberd')) L.push('- ejabberd 23.01 on PostgreSQL advertises `withtext` but builds MySQL syntax for it (`match (txt) against (...)`, see the peers\' notes): PostgreSQL rejects the query and the reply is an empty page. Its `with` matches the sender\'s real bare JID (`bare_peer`), not the occupant JID. It counts the room\'s whole archive (`count(*)`) for the RSM `<count/>` of every query, which is most of its time on the last-page and page-back rows at 1,000,000.');
    L.push('');
  }
  L.push('<!-- muc:end -->');
  return L.join('\n');
}

// ------------------------------------------------------------------------------------------------
// before/after: Perch builds against each other (--compare, --perch-dist)

/** Runs every case ROUNDS times per build, alternating the order of the builds; writes the before/after section. */
async function compareMain(meta, t0) {
  const ROUNDS = Number(argValue('--rounds') ?? (QUICK ? 1 : 3));
  const runs = Object.fromEntries(BUILDS.map((b) => [b.name, {}]));
  for (const c of CASES) {
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [...BUILDS].reverse() : BUILDS;
      for (const b of order) {
        log(`==== ${stamp()} ${c.tag}, round ${round + 1}/${ROUNDS}, ${b.name}`);
        const one = { [b.name]: {} };
        try { await runCase(c, b, one); } catch (e) { one[b.name][c.tag] = { error: e.message }; log(`    !! ${b.name} ${c.tag}: ${e.stack ?? e}`); await b.stop().catch(() => {}); }
        (runs[b.name][c.tag] ??= []).push({ ...one[b.name][c.tag], round });
      }
    }
  }
  Object.assign(meta, {
    minutes: Math.round((Date.now() - t0) / 60000), rounds: ROUNDS, argv,
    order: ROUNDS > 1 ? `${BUILDS.map((b) => b.name).join(', ')} then ${[...BUILDS].reverse().map((b) => b.name).join(', ')}, …` : BUILDS.map((b) => b.name).join(', '),
    builds: BUILDS.map((b) => ({ name: b.name, root: b.root, version: b.version(), commit: b.commit(), provisioned: b.provisioned })),
    cases: CASES.map((c) => ({ tag: c.tag, title: title(c) })),
    descr: `Each build: its own dist/ copied at the start of the run, on PostgreSQL (its own fresh database on ${PG_ADMIN_URL.replace(/\/[^/]*$/, '')}, dropped after) and Redis (${REDIS_URL}), flood limit lifted, c2s ${BUILDS[0].port}; load: the shared xmppbench muc-fanout scenario with the peers' parameters`,
  });
  meta.governed = GOVERNED;
  meta.compliance = COMPLIANCE !== null;
  fs.appendFileSync(RAW, `${JSON.stringify({ meta, sizes: S, compare: true, runs })}\n`);
  if (WRITE_DOCS) writeDocs(...compareDocs(meta, runs));
  for (const c of meta.cases) {
    const m = (name, f) => median((runs[name][c.tag] ?? []).filter((r) => !r.error).map(f));
    log(`${c.tag}: ${BUILDS.map((b) => `${b.name} ${big(m(b.name, (r) => r.delivered_per_s))}/s p99 ${fmt(m(b.name, (r) => r.latency_ms?.p99))} ms`).join(' | ')}`);
  }
  log(`raw JSON lines: ${path.relative(ROOT, RAW)}`);
}

/** Replaces the section between <!-- KEY:begin --> and <!-- KEY:end --> (muc, or muc-compare for --compare). */
function writeDocs(text, key = 'muc') {
  writeDocsSection(ROOT, text, key, 'bench/muc.mjs', log);
  if (key === 'muc') writeTargets(ROOT, log);
}

// ------------------------------------------------------------------------------------------------

/**
 * Other jobs on the host skew every figure: before each case the run waits (up to QUIET_WAIT_S) until the
 * machine is below QUIET_PCT busy, and repeats a case that failed or during which other jobs took more than
 * NOISY_PCT of a core (up to RETRIES more times), keeping the quietest attempt (bench/resources.mjs).
 * Comparisons repeat every case in rounds instead (--rounds) and report medians.
 */
const QUIET_WAIT_S = Number(argValue('--quiet-wait') ?? (QUICK ? 0 : 120));
const QUIET_PCT = 30;
const RETRIES = Number(argValue('--retries') ?? (QUICK || COMPARE ? 0 : 2));
const NOISY_PCT = 25;
const measured = (once) => measureQuietest(once, {
  retries: RETRIES, noisyPct: NOISY_PCT, quiet: { maxWaitS: QUIET_WAIT_S, quietPct: QUIET_PCT }, log,
  // Flush PostgreSQL's dirty pages first, so that no server's case meets a checkpoint left by an
  // earlier bulk load (commit latency is part of every archived message's delivery).
  before: () => pgAdmin('CHECKPOINT').catch(() => {}),
});

async function runCase(c, srv, res) {
  const common = ['--port', srv.port, '--domain', DOMAIN, '--muc', MUC, '--db-name', srv.db];
  const scram = ['--scram-cache', path.join(WORK, `scram-${srv.name}.json`)];
  const fresh = async (fn) => { const pid = await srv.start(); try { return await fn(pid); } finally { await srv.stop(); } };
  if (c.kind === 'xmppbench') {
    res[srv.name][c.tag] = await measured(() => fresh(async (pid) => {
      // PostgreSQL's own commit latency beside the load: the fan-out target is relative to it
      const probe = c.group === 'fanout' ? await startCommitProbe(pgUrl(PROBE_DB)).catch((e) => { log(`    commit probe: ${e.message}`); return null; }) : null;
      const r = await xmppbench(srv.name, c.tag, [...c.argv, ...common, '--server-pid', pid, ...scram], srv.loadOptions?.());
      if (probe) r.pg_commit_probe = await probe.stop();
      if (srv.commitWait) r.commit_wait = await srv.commitWait();
      if (srv.governed) r.governed_rooms = await governedRooms(srv);
      return r;
    }));
    return;
  }
  // MAM: create the room and capture the template row (server running), load with the server stopped
  const arch = archiveOf(c.size);
  let load;
  try {
    const prep = await fresh(() => prepareRoom(srv, c.room));
    log(`    ${srv.name}: room ${c.room} configured ${JSON.stringify(prep.applied)}; template row: ${prep.template.xml.slice(0, 400)}`);
    const pg = await pgClient(pgUrl(srv.db));
    try {
      await clearRoomArchive(pg, srv.name, c.room);
      if (srv.partitionsFrom) await srv.partitionsFrom(new Date(arch.stamps[0] * 1000));
      load = await loadArchive(pg, srv.name, c.room, arch, prep.template, { domain: DOMAIN, log: (s) => log(`    ${stamp()} ${s}`) });
    } finally { await pg.end(); }
    log(`    ${srv.name}: loaded ${load.rows} rows in ${load.insert_s} s, VACUUM ANALYZE ${load.vacuum_s} s`);
  } catch (e) {
    res[srv.name][c.tag] = { error: `archive load: ${e.message}` };
    log(`    !! ${srv.name} ${c.tag}: ${e.stack ?? e}`);
    return;
  }
  const manifest = path.join(WORK, `manifest-${srv.name}-${c.size}.json`);
  fs.writeFileSync(manifest, JSON.stringify({ room: c.room, n: arch.n, expect: arch.expect }));
  const r = await measured(() => fresh((pid) => runScript(path.join(BENCH, 'mam-query.mjs'), srv.name, c.tag,
    ['--port', srv.port, '--domain', DOMAIN, '--db-name', srv.db, '--manifest', manifest, '--reps', S.reps, '--warmup', S.warmup, '--server-pid', pid], { timeoutS: 1200, ...srv.loadOptions?.() })));
  r.load = load;
  res[srv.name][c.tag] = r;
  // after the queries, as it adds messages to the room
  if (c.joinAfter) {
    res[srv.name][`${c.tag}-join`] = await measured(() => fresh((pid) => xmppbench(srv.name, `${c.tag}-join`,
      ['--scenario', 'join-history', '--room', c.room, '--joins', S.joins, '--concurrency', 10, '--history', 20, '--history-preload', 30, ...common, '--server-pid', pid, ...scram], srv.loadOptions?.())));
  }
}

/** Rooms of a governed build's database that are in the category bench with members group:bench-users (a check that the load's rooms were governed). */
async function governedRooms(srv) {
  const pg = await pgClient(pgUrl(srv.db));
  try {
    const r = await pg.query(`SELECT count(*)::int AS n FROM chat_rooms r JOIN chat_acl a ON a.service = r.service AND a.object_kind = 'room' AND a.object_name = r.room
      AND a.list = 'members' AND a.principal = 'group:bench-users' WHERE r.category = 'bench' AND NOT r.members_inherit`);
    return r.rows[0].n;
  } finally { await pg.end(); }
}

const PROBE_DB = `${DB_PREFIX}_probe`;
let probeCreated = false;
let shutdown = null;
/** Stops every server and drops their databases; the same promise however often it is called. */
function shutdownAll() {
  shutdown ??= (async () => {
    for (const s of SERVERS) await s.shutdown().catch((e) => log(`${s.name} shutdown: ${e.message}`));
    await privateRedis?.stop().catch((e) => log(`redis stop: ${e.message}`));
    if (probeCreated) await pgAdmin(`DROP DATABASE IF EXISTS ${PROBE_DB} WITH (FORCE)`).catch((e) => log(`drop ${PROBE_DB}: ${e.message}`));
    fs.rmSync(WORK, { recursive: true, force: true });
  })();
  return shutdown;
}

/** --report-only FILE: rewrites the docs section from a run's last summary line (no server is started). */
async function reportOnly(file) {
  const line = fs.readFileSync(file, 'utf8').trim().split('\n').filter((l) => l.includes('"meta"')).pop();
  if (!line) throw new Error(`${file} holds no run summary`);
  const parsed = JSON.parse(line);
  if (parsed.compare) return writeDocs(...compareDocs(parsed.meta, parsed.runs));
  const { meta, results } = parsed;
  for (const s of SERVERS) s.provisioned = meta.provisioned?.[s.name];
  for (const size of S.archives) archiveOf(size);
  writeDocs(section(meta, results));
}

async function main() {
  if (argValue('--report-only')) return reportOnly(argValue('--report-only'));
  if (!SERVERS.length) throw new Error('no server left to measure');
  if (SERVERS.includes(perch) && !fs.existsSync(path.join(ROOT, 'dist/src/cli.js'))) throw new Error('build Perch first: npx tsc -p .');
  for (const s of SERVERS.filter((x) => !isPerch(x))) if (!s.version()) throw new Error(`${s.name} is not installed (Debian package ${s.name}); or pass --no-${s.name}`);
  fs.mkdirSync(path.dirname(RAW), { recursive: true });
  fs.writeFileSync(RAW, '');
  const t0 = Date.now();
  const commit = perch.commit();
  const meta = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? '?',
    kernel: os.release(), node: process.version, loadavg: os.loadavg().map((v) => v.toFixed(2)).join(' '),
    versions: { perch: `${perch.version()} (commit ${commit}; dist/ copied at the start of the run)`, prosody: prosody.version(), ejabberd: ejabberd.version() },
    descr: {
      perch: `PostgreSQL 15 (database ${perch.db}) + Redis 7 (${REDIS_URL}${process.env.PERCH_BENCH_REDIS || SHARED_REDIS ? '' : ', a redis-server started for the run: Perch processes sharing one Redis form one cluster'}), flood limit lifted like the peers', c2s ${perch.port}`,
      prosody: `Debian package, \`storage = "sql"\` on PostgreSQL (database ${prosody.db}), mod_muc + mod_muc_mam, \`nagle = false\`, c2s ${prosody.port}, shared peer config otherwise`,
      ejabberd: `Debian package, \`default_db: sql\` on PostgreSQL (database ${ejabberd.db}, /usr/share/ejabberd/sql/pg.sql), mod_muc (\`mam: true\`) + mod_mam, c2s ${ejabberd.port}, shared peer config otherwise`,
    },
  };
  log(`muc bench: servers ${SERVERS.map((s) => s.name).join(', ')}; cases ${CASES.map((c) => c.tag).join(', ')}; work dir ${WORK}`);
  if (SERVERS.some(isPerch)) await privateRedis?.start();
  if (CASES.some((c) => c.group === 'fanout')) { await pgAdmin(`CREATE DATABASE ${PROBE_DB}`); probeCreated = true; }
  for (const s of SERVERS) {
    log(`==== ${stamp()} provisioning ${s.name}`);
    await s.provision();
    await s.stop();
    log(`    ${s.provisioned}`);
  }
  if (COMPARE) return compareMain(meta, t0);
  const res = Object.fromEntries(SERVERS.map((s) => [s.name, {}]));
  for (const c of CASES) {
    for (const s of SERVERS) {
      try { await runCase(c, s, res); } catch (e) { res[s.name][c.tag] = { error: e.message }; log(`    !! ${s.name} ${c.tag}: ${e.stack ?? e}`); await s.stop().catch(() => {}); }
    }
  }
  meta.minutes = Math.round((Date.now() - t0) / 60000);
  meta.provisioned = Object.fromEntries(SERVERS.map((s) => [s.name, s.provisioned]));
  meta.argv = argv;
  fs.appendFileSync(RAW, `${JSON.stringify({ meta, sizes: S, results: res })}\n`);
  if (WRITE_DOCS) writeDocs(section(meta, res));
  for (const t of SERVERS.includes(perch) ? targets(res).filter((x) => x.label) : []) log(`target: ${t.label ?? t.id}: ${t.value ?? 'not measured'} ${t.met === null ? '' : t.met ? '(met)' : '(NOT met)'}`);
  log(`raw JSON lines: ${path.relative(ROOT, RAW)}`);
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { log(`${sig}: stopping servers`); shutdownAll().finally(() => process.exit(130)); });
main().then(shutdownAll).catch(async (e) => {
  process.stderr.write(`muc bench: ${e?.stack ?? e}\n`);
  await shutdownAll();
  process.exit(1);
});
