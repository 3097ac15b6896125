#!/usr/bin/env node
// The persistent-chat model at the original's scale (issue 8, "Speed, measured"): seeds a fresh PostgreSQL
// database with 150,000 directory users, 10,000 nested groups, 100 categories and 33,000 rooms (≈ 2,000,000
// access entries) straight into the tables, then measures in process, on the built dist/ modules:
//   - ChatModel.start() (time, RSS and heap it adds),
//   - principal sets loaded cold, one user per call and 500 per call (Directory.load),
//   - permission checks (access.ts canJoin / canPost on model.subject, policy evaluation included), cold and warm,
// and, on two nodes sharing the database and a private redis-server, the time from a group change made on
// node a until node b enforces it (bench/pchat-node.mjs is one node). Writes its section of
// docs/benchmarks.md between <!-- pchat:begin --> and <!-- pchat:end --> (notes between
// <!-- pchat:notes:begin/end --> are kept).
//
//   npm run build && node bench/pchat-scale.mjs           everything at full scale (seed ≈ 1–2 min)
//   node bench/pchat-scale.mjs --scale 0.05 --no-docs     a smoke test at 1/20 of the sizes
//   --keep-db NAME     seed into NAME and keep it (or reuse NAME when it is already seeded at this scale)
//   --phases seed,model,checks,propagation   a subset (seed always runs unless the database is reused)
//   --repeats N        group changes timed in the propagation phase (default 7)
//   --propagation servers|models|both   two Perch server processes (the change through the CLI on a's admin
//                      socket, the occupant's 321 presence from b), two model-only nodes, or both (default; the
//                      servers are skipped when the build has no room enforcement yet)
//   --pairs N          (user, room) pairs for the warm checks (default 200,000)
//   --occupants N      directory users given accounts, logged in to node b and joined to rooms they may join
//                      there, so that b re-checks them on each change (default 1000)
//
// Database: postgres://root@127.0.0.1:5432 (PERCH_BENCH_PG for another admin URL), database
// perch_pchat_bench_<pid>, dropped at the end unless --keep-db.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import { waitPort, portFree, prng as rng, writeDocsSection, perchNodeFlags } from './lib.mjs';
import { SHAPE, seedSql, describeShape, pickProbeRoom } from './pchat-seed.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const DIST = path.join(ROOT, 'dist');
const argv = process.argv.slice(2);
const argValue = (name) => { const i = argv.indexOf(name); return i === -1 ? null : argv[i + 1]; };
const has = (name) => argv.includes(name);
const SCALE = Number(argValue('--scale') ?? 1);
const WRITE_DOCS = !has('--no-docs');
const PHASES = (argValue('--phases') ?? 'seed,model,checks,propagation').split(',');
const REPEATS = Number(argValue('--repeats') ?? 7);
const PAIRS = Number(argValue('--pairs') ?? 200_000);
const OCCUPANTS = Number(argValue('--occupants') ?? 1000);
const PG_ADMIN_URL = process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/test';
const KEEP_DB = argValue('--keep-db');
const DB = KEEP_DB ?? `perch_pchat_bench_${process.pid}`;
const pgUrl = (db) => PG_ADMIN_URL.replace(/\/[^/]*$/, `/${db}`);
const REDIS_PORT = 29479;
const REDIS_URL = `redis://127.0.0.1:${REDIS_PORT}`;
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-pchat-bench-'));
const RAW = path.join(BENCH, 'results', 'tmp', `pchat-${SCALE === 1 ? 'latest' : 'scaled'}.json`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stdout.write(`${s}\n`);
const stamp = () => new Date().toISOString().slice(11, 19);
const now = () => performance.timeOrigin + performance.now();
const shape = SHAPE(SCALE);

// Heap figures need a collection before each reading.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

const pgMod = (await import('pg')).default;
async function pgAdmin(sql) {
  const c = new pgMod.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try { return await c.query(sql); } finally { await c.end(); }
}

// ------------------------------------------------------------------------------------------------
// statistics

function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
function stats(xs) {
  const s = Float64Array.from(xs).sort();
  let sum = 0;
  for (const x of s) sum += x;
  return { n: s.length, p50: pct(s, 50), p99: pct(s, 99), max: s[s.length - 1], mean: sum / s.length };
}
const mem = () => { gc(); gc(); const m = process.memoryUsage(); return { rss: m.rss, heap: m.heapUsed }; };
const MiB = (b) => b / 1048576;

// ------------------------------------------------------------------------------------------------
// phase 1: seed

async function seeded() {
  try {
    const c = new pgMod.Client({ connectionString: pgUrl(DB) });
    await c.connect();
    try {
      const r = await c.query(`SELECT (SELECT count(*) FROM user_org_units)::int AS users, (SELECT count(*) FROM chat_rooms)::int AS rooms`);
      return r.rows[0].users === shape.users + 2 && r.rows[0].rooms === shape.rooms; // + the probe and the admin
    } finally { await c.end(); }
  } catch { return false; }
}

/** Accounts (password bench-pw) for the probe, the admin and the first OCCUPANTS directory users; existing ones are kept. */
async function createAccounts() {
  const { openDataStores } = await import(path.join(DIST, 'storage/open.js'));
  const { addUser } = await import(path.join(DIST, 'src/accounts.js'));
  const stores = await openDataStores({ databaseUrl: pgUrl(DB), dataDir: null });
  try {
    const names = [shape.probeUser, shape.adminUser].map((u) => u.split('@')[0]);
    for (let i = 0; i < OCCUPANTS; i++) names.push(`u${i}`);
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < names.length) {
        const r = await addUser(stores, shape.domain, names[next++], 'bench-pw', 4096);
        if (r === 'invalid') throw new Error('addUser refused a bench account');
      }
    }));
  } finally { await stores.db.close(); }
}

async function seed() {
  const out = {};
  if (KEEP_DB && await seeded()) {
    log(`${stamp()} reusing database ${DB} (already seeded at this scale)`);
    out.reused = true;
  } else {
    if (KEEP_DB) await pgAdmin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    await pgAdmin(`CREATE DATABASE ${DB}`);
    // the schema: Perch's own migrations, through its store opener
    const { openDataStores } = await import(path.join(DIST, 'storage/open.js'));
    const t0 = now();
    const stores = await openDataStores({ databaseUrl: pgUrl(DB), dataDir: null });
    await stores.db.close();
    out.migrate_ms = now() - t0;
    const c = new pgMod.Client({ connectionString: pgUrl(DB) });
    await c.connect();
    out.steps = [];
    const t1 = now();
    try {
      await c.query('SET synchronous_commit = off');
      await c.query("SET maintenance_work_mem = '256MB'");
      for (const [label, sql] of seedSql(shape)) {
        const s0 = now();
        const r = await c.query(sql);
        const ms = now() - s0;
        out.steps.push({ label, rows: r.rowCount ?? null, ms });
        log(`    ${stamp()} seed: ${label}: ${r.rowCount ?? ''} rows in ${(ms / 1000).toFixed(1)} s`);
      }
      out.insert_ms = now() - t1;
      const v0 = now();
      await c.query('VACUUM ANALYZE');
      out.vacuum_ms = now() - v0;
    } finally { await c.end(); }
    // accounts for the clients of the propagation phase (the directory users need none)
    const a0 = now();
    await createAccounts();
    out.accounts_ms = now() - a0;
    out.total_ms = now() - t0;
  }
  if (out.reused) await createAccounts();
  const c = new pgMod.Client({ connectionString: pgUrl(DB) });
  await c.connect();
  try {
    const q = async (sql) => Number((await c.query(sql)).rows[0].n);
    out.counts = {
      users: await q('SELECT count(*) AS n FROM user_org_units'),
      org_units: await q('SELECT count(*) AS n FROM org_units'),
      groups: await q('SELECT count(*) AS n FROM directory_groups'),
      group_members: await q('SELECT count(*) AS n FROM directory_group_members'),
      nesting_edges: await q("SELECT count(*) AS n FROM directory_group_members WHERE member LIKE 'group:%'"),
      categories: await q('SELECT count(*) AS n FROM chat_categories'),
      rooms: await q('SELECT count(*) AS n FROM chat_rooms'),
      acl: await q('SELECT count(*) AS n FROM chat_acl'),
      acl_room_members: await q("SELECT count(*) AS n FROM chat_acl WHERE object_kind = 'room' AND list = 'members'"),
      policies: await q('SELECT count(*) AS n FROM chat_policies'),
      policies_by_scope: Object.fromEntries((await c.query('SELECT scope, count(*)::int AS n FROM chat_policies GROUP BY 1')).rows.map((r) => [r.scope, r.n])),
      target_rooms: await q(`SELECT count(*) AS n FROM chat_acl WHERE list = 'members' AND principal = 'group:${shape.targetGroup}'`),
      privacy: (await c.query('SELECT privacy, type, count(*)::int AS n FROM chat_rooms GROUP BY 1, 2 ORDER BY 1, 2')).rows,
      db_size_mb: Math.round(Number((await c.query('SELECT pg_database_size(current_database()) AS n')).rows[0].n) / 1048576),
    };
    out.probe = await pickProbeRoom(c, shape);
  } finally { await c.end(); }
  return out;
}

// ------------------------------------------------------------------------------------------------
// phase 2: the model in process

function modelHost(stores) {
  return {
    stores, isAdmin: () => false, nodeId: 'bench',
    log: { warn: (m) => log(`    model warn: ${m}`), error: (m, f) => log(`    model error: ${m} ${f?.err ?? ''}`) },
  };
}

/** One ChatModel.start() from nothing: time, and the RSS and heap it adds (after collections). */
async function startOnce(ChatModel, stores) {
  const m0 = mem();
  const t0 = now();
  let m = new ChatModel(modelHost(stores), [shape.service]);
  await m.start();
  const ms = now() - t0;
  const m1 = mem();
  const rooms = m.forService(shape.service).rooms.size;
  m = null;
  const m2 = mem();
  const r = { ms, rss_mb: MiB(m1.rss - m0.rss), heap_mb: MiB(m1.heap - m0.heap), released_heap_mb: MiB(m1.heap - m2.heap), rss_total_mb: MiB(m1.rss) };
  log(`    ${stamp()} ChatModel.start(): ${ms.toFixed(0)} ms, +${r.rss_mb.toFixed(0)} MiB RSS (process ${r.rss_total_mb.toFixed(0)} MiB), +${r.heap_mb.toFixed(0)} MiB heap, ${r.released_heap_mb.toFixed(0)} MiB freed when dropped (${rooms} rooms)`);
  return r;
}

async function modelPhase(res) {
  const { openDataStores } = await import(path.join(DIST, 'storage/open.js'));
  const { ChatModel } = await import(path.join(DIST, 'src/pchat/model.js'));
  const access = await import(path.join(DIST, 'src/pchat/access.js'));
  const stores = await openDataStores({ databaseUrl: pgUrl(DB), dataDir: null });
  const out = {};
  try {
    // ---- start(): three starts, each measured in its own call so that no earlier model stays reachable
    const starts = [];
    for (let i = 0; i < 3; i++) starts.push(await startOnce(ChatModel, stores));
    const model = new ChatModel(modelHost(stores), [shape.service]);
    await model.start();
    out.start = starts;
    out.rooms_loaded = model.forService(shape.service).rooms.size;
    if (!PHASES.includes('checks')) return out;
    const svc = model.forService(shape.service);
    const rooms = [...svc.rooms.values()];
    const r = rng(20261205);
    const pickUser = () => `u${Math.floor(r() * shape.users)}@${shape.domain}`;

    // ---- principal sets, cold: one user per call (each user loaded for the first time)
    model.directory.invalidate && await model.directory.invalidate();
    const single = [];
    const coldCheck = [];
    const seen = new Set();
    while (single.length < 2000) {
      const u = pickUser();
      if (seen.has(u)) continue;
      seen.add(u);
      const t0 = now();
      await model.directory.load([u]);
      single.push((now() - t0) * 1000);
    }
    // cold check: subject loaded for the first time, then canJoin on a random room
    const cold = [];
    while (coldCheck.length < 2000) {
      const u = pickUser();
      if (seen.has(u)) continue;
      seen.add(u);
      const room = rooms[Math.floor(r() * rooms.length)];
      const t0 = now();
      const s = await model.subjectOf(u);
      const ok = access.canJoin(s, room, svc.categoryOf(room));
      coldCheck.push((now() - t0) * 1000);
      cold.push(ok);
    }
    out.load_single_us = stats(single);
    out.cold_check_us = stats(coldCheck);
    log(`    ${stamp()} principal sets, one user per call (cold): p50 ${(out.load_single_us.p50 / 1000).toFixed(2)} / p99 ${(out.load_single_us.p99 / 1000).toFixed(2)} ms; cold check p50 ${(out.cold_check_us.p50 / 1000).toFixed(2)} / p99 ${(out.cold_check_us.p99 / 1000).toFixed(2)} ms`);

    // ---- principal sets, cold: 500 users per call
    await model.directory.invalidate();
    const batch = [];
    const warmUsers = [];
    const wanted = Math.min(shape.users, 25_000);
    const drawn = new Set();
    while (drawn.size < wanted) drawn.add(pickUser());
    const all = [...drawn];
    for (let i = 0; i + 500 <= all.length; i += 500) {
      const part = all.slice(i, i + 500);
      const t0 = now();
      await model.directory.load(part);
      batch.push(now() - t0);
      warmUsers.push(...part);
    }
    out.load_batch_ms = stats(batch);
    out.load_batch_per_user_us = (out.load_batch_ms.mean * 1000) / 500;
    const sizes = warmUsers.slice(0, 5000).map((u) => model.directory.peek(u).size);
    out.principals_per_user = stats(sizes);
    log(`    ${stamp()} principal sets, 500 users per call (cold): p50 ${out.load_batch_ms.p50.toFixed(1)} / p99 ${out.load_batch_ms.p99.toFixed(1)} ms per call (${out.load_batch_per_user_us.toFixed(0)} µs per user); ${out.principals_per_user.mean.toFixed(1)} principals per user`);

    // ---- warm checks: canJoin and canPost, subject built per check (policy evaluation included)
    const N = PAIRS;
    const users = new Array(N), picks = new Array(N);
    for (let i = 0; i < N; i++) { users[i] = warmUsers[Math.floor(r() * warmUsers.length)]; picks[i] = rooms[Math.floor(r() * rooms.length)]; }
    const run = (fn) => {
      const t = new Float64Array(N);
      let yes = 0;
      for (let i = 0; i < N; i++) {
        const t0 = process.hrtime.bigint();
        const s = model.subject(users[i]);
        const room = picks[i];
        if (fn(s, room, svc.categoryOf(room))) yes++;
        t[i] = Number(process.hrtime.bigint() - t0) / 1000;
      }
      return { ...stats(t), allowed_share: yes / N };
    };
    // the timer's own cost, to read the sub-µs figures
    const empty = new Float64Array(N);
    for (let i = 0; i < N; i++) { const t0 = process.hrtime.bigint(); empty[i] = Number(process.hrtime.bigint() - t0) / 1000; }
    run(access.canJoin); run(access.canPost); // warm-up (JIT)
    out.timer_us = stats(empty);
    out.canJoin_us = run(access.canJoin);
    out.canPost_us = run(access.canPost);
    out.joinRefusal_us = run((s, room, cat) => access.joinRefusal(s, room, cat) === null);
    // the two halves: building the subject (principal set look-up + policy evaluation), and the rule itself
    out.subject_only_us = run((s) => s.enabled);
    const subjects = new Map(warmUsers.map((u) => [u, model.subject(u)]));
    {
      const t = new Float64Array(N);
      for (let i = 0; i < N; i++) {
        const s = subjects.get(users[i]);
        const t0 = process.hrtime.bigint();
        const room = picks[i];
        access.canJoin(s, room, svc.categoryOf(room));
        t[i] = Number(process.hrtime.bigint() - t0) / 1000;
      }
      out.canJoin_prebuilt_us = stats(t);
    }
    // throughput without the per-check timer
    const t0 = now();
    let yes = 0;
    for (let i = 0; i < N; i++) { const room = picks[i]; if (access.canJoin(model.subject(users[i]), room, svc.categoryOf(room))) yes++; }
    out.canJoin_per_s = N / ((now() - t0) / 1000);
    out.pairs = N;
    out.warm_users = warmUsers.length;
    const f = (x) => `${x.p50.toFixed(2)} / ${x.p99.toFixed(2)} µs`;
    log(`    ${stamp()} warm checks over ${N} pairs: canJoin ${f(out.canJoin_us)} (allowed ${(out.canJoin_us.allowed_share * 100).toFixed(1)}%), canPost ${f(out.canPost_us)}, joinRefusal ${f(out.joinRefusal_us)}; timer alone ${f(out.timer_us)}; ${Math.round(out.canJoin_per_s).toLocaleString('en-US')} canJoin/s untimed`);
    out.cold_allowed_share = cold.filter(Boolean).length / cold.length;
    return out;
  } finally {
    await stores.db.close();
    res.model = out;
  }
}

// ------------------------------------------------------------------------------------------------
// phase 3: propagation on two nodes

const redis = {
  proc: null,
  async start() {
    if (!(await portFree(REDIS_PORT))) throw new Error(`port ${REDIS_PORT} is busy (another private Redis?)`);
    this.proc = spawn('redis-server', ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', WORK, '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'inherit'] });
    this.exited = new Promise((r) => this.proc.once('exit', r));
    await waitPort(REDIS_PORT, 10000);
  },
  async stop() { if (!this.proc) return; this.proc.kill('SIGTERM'); await this.exited; this.proc = null; },
};

/** A node of the models-only variant: a child process running bench/pchat-node.mjs, spoken to over IPC. */
function modelNode(name, probe) {
  const child = spawn(process.execPath, ['--expose-gc', path.join(BENCH, 'pchat-node.mjs')], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, PCHAT_NODE: name, PCHAT_DB_URL: pgUrl(DB), PCHAT_REDIS_URL: REDIS_URL, PCHAT_DIST: DIST, PCHAT_SHAPE: JSON.stringify(shape), PCHAT_PROBE: JSON.stringify(probe) },
  });
  const waiting = new Map();
  const events = [];
  let seq = 0;
  child.on('message', (m) => {
    if (m.reply !== undefined) { const w = waiting.get(m.reply); waiting.delete(m.reply); if (m.error) w?.reject(new Error(m.error)); else w?.resolve(m); }
    else events.push(m);
  });
  const exited = new Promise((r) => child.once('exit', r));
  return {
    name, events,
    call(op, extra = {}) {
      const id = ++seq;
      return new Promise((resolve, reject) => { waiting.set(id, { resolve, reject }); child.send({ id, op, ...extra }); });
    },
    async waitEvent(pred, ms) {
      const until = Date.now() + ms;
      for (;;) {
        const i = events.findIndex(pred);
        if (i !== -1) return events.splice(i, 1)[0];
        if (Date.now() > until) throw new Error(`${name}: no event in ${ms} ms`);
        await sleep(2);
      }
    },
    async stop() { child.kill('SIGTERM'); await exited; },
  };
}

async function propagationModels(probe) {
  const a = modelNode('a', probe), b = modelNode('b', probe);
  try {
    const [ra, rb] = await Promise.all([a.call('start'), b.call('start')]);
    log(`    ${stamp()} nodes up: a started its model in ${ra.start_ms.toFixed(0)} ms, b in ${rb.start_ms.toFixed(0)} ms; b holds ${rb.occupants} occupants in ${rb.rooms_held} rooms (probe in ${probe.room})`);
    const runs = [];
    for (let i = 0; i < 2 * REPEATS; i++) {
      const scoped = i % 2 === 0;
      // the probe is a member through the group; b has it as an occupant of the probe room
      const before = await b.call('check');
      if (!before.canJoin) throw new Error('probe may not join before the change: seed mismatch');
      b.events.length = 0;
      const t0 = now();
      const done = await a.call('remove', { scoped });
      const ev = await b.waitEvent((e) => e.event === 'ejected', 30000);
      const run = { scoped, change_to_enforced_ms: ev.at - t0, committed_to_enforced_ms: ev.at - done.committed_at, write_ms: done.committed_at - t0, publish_ms: done.published_at - done.committed_at, b_received_to_enforced_ms: ev.at - ev.received_at, b_rechecked: ev.rechecked };
      runs.push(run);
      log(`    ${stamp()} change ${i + 1} (${scoped ? 'scoped' : 'unscoped'}): a wrote in ${run.write_ms.toFixed(1)} ms; b enforced ${run.change_to_enforced_ms.toFixed(1)} ms after the change (${run.b_received_to_enforced_ms.toFixed(1)} ms after it heard of it; ${ev.rechecked} occupants re-checked)`);
      // put the user back (also a change both nodes hear), and wait until b lets them in again
      await a.call('add', { scoped });
      await b.waitEvent((e) => e.event === 'admitted', 30000);
      await sleep(300);
    }
    return { mode: 'models', runs, start_a_ms: ra.start_ms, start_b_ms: rb.start_ms, b_occupants: rb.occupants, b_rooms: rb.rooms_held };
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
}

/** Two Perch servers (dist/src/cli.js start) on the seeded database and the private Redis. */
function perchNode(name, port) {
  const dir = path.join(WORK, `node-${name}`);
  const config = path.join(WORK, `node-${name}.json`);
  return {
    name, port, dir, config, proc: null,
    async start() {
      if (!(await portFree(port))) throw new Error(`port ${port} is busy`);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(config, JSON.stringify({
        domain: shape.domain, dataDir: dir, logLevel: 'warn', databaseUrl: pgUrl(DB), redisUrl: REDIS_URL, workers: 1, nodeId: `pchat-bench-${name}`, admins: [shape.adminUser],
        listen: { c2s: { host: '127.0.0.1', port }, c2sDirectTls: null, component: null, metrics: null, upload: null },
        tls: { requireStartTls: false },
        limits: { authFailuresPerIp: 1_000_000, authFailuresPerAccount: 1_000_000, authTimeout: 120 },
      }, null, 2));
      const t0 = now();
      this.proc = spawn(process.execPath, [...perchNodeFlags(DIST), path.join(DIST, 'src/cli.js'), '--config', config, 'start'], { stdio: ['ignore', 'inherit', 'inherit'] });
      this.exited = new Promise((r) => this.proc.once('exit', r));
      await Promise.race([waitPort(port, 120000), this.exited.then((c) => { throw new Error(`perch ${name} exited with ${c}`); })]);
      this.start_ms = now() - t0;
      this.rss_mb = MiB(Number(fs.readFileSync(`/proc/${this.proc.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) * 1024);
    },
    /** The CLI on this node's configuration (through its admin socket): resolves with its wall time. */
    cli(...a) {
      return new Promise((resolve, reject) => {
        const t0 = now();
        const c = spawn(process.execPath, [path.join(DIST, 'src/cli.js'), '--config', config, ...a], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        c.stdout.on('data', (d) => { out += d; });
        c.stderr.on('data', (d) => { out += d; });
        c.on('exit', (code) => (code === 0 ? resolve({ ms: now() - t0, at: now(), out }) : reject(new Error(`perch ${a.join(' ')} on ${name}: exit ${code}: ${out.trim()}`))));
      });
    },
    async stop() {
      if (!this.proc) return;
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc?.kill('SIGKILL'), 15000);
      await this.exited;
      clearTimeout(t);
      this.proc = null;
    },
  };
}

/** [user number, room] for the occupants of b: each of u0..u(OCCUPANTS-1) in the first of 300 rooms (from a random start) it may join. */
async function occupantPairs() {
  const { openDataStores } = await import(path.join(DIST, 'storage/open.js'));
  const { ChatModel } = await import(path.join(DIST, 'src/pchat/model.js'));
  const access = await import(path.join(DIST, 'src/pchat/access.js'));
  const stores = await openDataStores({ databaseUrl: pgUrl(DB), dataDir: null });
  try {
    const model = new ChatModel(modelHost(stores), [shape.service]);
    await model.start();
    const svc = model.forService(shape.service);
    const rooms = [...svc.rooms.values()].slice(0, 300);
    const users = Array.from({ length: OCCUPANTS }, (_, i) => `u${i}@${shape.domain}`);
    await model.ensureSubjects(users);
    const r = rng(321);
    const pairs = [];
    users.forEach((u, n) => {
      const s = model.subject(u);
      const from = Math.floor(r() * rooms.length);
      for (let k = 0; k < rooms.length; k++) {
        const room = rooms[(from + k) % rooms.length];
        if (access.canJoin(s, room, svc.categoryOf(room))) { pairs.push([n, room.room]); return; }
      }
    });
    return pairs;
  } finally { await stores.db.close(); }
}

/** Does this build have the room enforcement and the CLI for groups? */
const serversReady = () => fs.existsSync(path.join(DIST, 'src/muc/features/governance.js')) && fs.existsSync(path.join(DIST, 'src/cli/chat.js'));

async function propagationServers(probe) {
  const XB = process.env.XMPPBENCH_DIR ?? path.resolve(ROOT, '..', 'shared', 'bench');
  const { makeClient, joinRoom } = await import(path.join(XB, 'lib', 'ops.mjs'));
  const a = perchNode('a', 29622), b = perchNode('b', 29623);
  let client = null, admin = null;
  const occupants = [];
  try {
    await a.start();
    await b.start();
    log(`    ${stamp()} servers up: a in ${a.start_ms.toFixed(0)} ms (RSS ${a.rss_mb.toFixed(0)} MiB), b in ${b.start_ms.toFixed(0)} ms (RSS ${b.rss_mb.toFixed(0)} MiB)`);
    const conn = { host: '127.0.0.1', port: b.port, domain: shape.domain, tls: 'none', mech: 'SCRAM-SHA-1', userPrefix: 'probe', password: 'bench-pw', timeoutMs: 30000 };
    client = makeClient(conn, 0, { resource: 'bench' });
    await client.login();
    const roomJid = `${probe.room}@${shape.service}`;
    const nick = 'probe';
    const full = `${roomJid}/${nick}`;
    // the CLI's own cost (a process started, the admin socket asked, a reply printed): a read-only command
    const idle = [];
    for (let i = 0; i < 3; i++) idle.push((await a.cli('group', 'show', probe.group)).ms);
    // b holds rooms with occupants: directory users with accounts, each in a room (of the first 300) it may join
    const pairs = await occupantPairs();
    const t1 = now();
    let next = 0;
    await Promise.all(Array.from({ length: 25 }, async () => {
      while (next < pairs.length) {
        const [n, room] = pairs[next++];
        const c = makeClient({ ...conn, userPrefix: 'u' }, n, { resource: 'bench' });
        await c.login();
        await joinRoom(c, `${room}@${shape.service}`, `u${n}`, { maxstanzas: 0 });
        occupants.push(c);
      }
    }));
    log(`    ${stamp()} ${occupants.length} occupants logged in to b and joined ${new Set(pairs.map(([, r]) => r)).size} rooms in ${((now() - t1) / 1000).toFixed(1)} s`);
    admin = makeClient({ ...conn, port: a.port, userPrefix: 'admin' }, '', { resource: 'bench' });
    await admin.login();
    /** The same operation as an XEP-0050 command from an admin's client on a, in one request (the form submitted with execute). */
    const adhoc = async (members) => {
      const x = `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/admin</value></field><field var='group'><value>${probe.group}</value></field><field var='members'><value>${members}</value></field></x>`;
      const r = await admin.iq('set', `<command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#group-set' action='execute'>${x}</command>`, { to: shape.domain });
      if (r.attrs.type !== 'result' || r.getChild('command')?.attrs.status !== 'completed') throw new Error(`group-set ad-hoc: ${r.toString().slice(0, 300)}`);
      return { at: now() };
    };
    const runs = [];
    for (let i = 0; i < 2 * REPEATS; i++) {
      const via = i % 2 ? 'cli' : 'adhoc';
      const joined = await joinRoom(client, roomJid, nick, { maxstanzas: 0 });
      if (!joined.codes.includes('110')) throw new Error(`probe join: no status 110 (${joined.el.toString().slice(0, 200)})`);
      await sleep(300);
      const ejected = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no ejection within 60 s')), 60000);
        client.onPresence = (el) => {
          if (el.attrs.from !== full || el.attrs.type !== 'unavailable') return;
          clearTimeout(timer);
          client.onPresence = null;
          const x = el.getChildren('x').find((c) => c.attrs.xmlns === 'http://jabber.org/protocol/muc#user');
          resolve({ at: now(), codes: x ? x.getChildren('status').map((st) => st.attrs.code) : [], reason: x?.getChild('item')?.getChildText('reason') ?? null });
        };
      });
      const t0 = now();
      const op = via === 'cli' ? a.cli('group', 'set', probe.group, '--members', `-${probe.user}`) : adhoc(`-${probe.user}`);
      const ev = await ejected;
      const done = await op;
      const run = { via, change_to_enforced_ms: ev.at - t0, op_ms: done.at - t0, codes: ev.codes, reason: ev.reason };
      runs.push(run);
      log(`    ${stamp()} change ${i + 1} (${via === 'cli' ? `'perch group set ${probe.group} --members -${probe.user}' on a` : 'group-set ad-hoc command on a'}) → b's occupant got its presence after ${run.change_to_enforced_ms.toFixed(1)} ms (status ${ev.codes.join(',')}; reason ${JSON.stringify(ev.reason)}); the ${via === 'cli' ? 'CLI' : 'command'} took ${run.op_ms.toFixed(0)} ms`);
      if (via === 'cli') await a.cli('group', 'set', probe.group, '--members', `+${probe.user}`);
      else await adhoc(`+${probe.user}`);
      await sleep(500);
    }
    return {
      mode: 'servers', runs, group: probe.group, user: probe.user, occupants: occupants.length, occupied_rooms: new Set(pairs.map(([, r]) => r)).size + 1, cli_idle_ms: stats(idle), start_a_ms: a.start_ms, start_b_ms: b.start_ms, rss_a_mb: a.rss_mb, rss_b_mb: b.rss_mb,
      describe: `two Perch server processes (\`perch start\`, dist/) on the seeded database and a private redis-server; b holds ${occupants.length} other occupants (directory users with accounts) in ${new Set(pairs.map(([, r]) => r)).size} governed rooms, re-checked on each change; the probe user (in the room's member list only through the group) joined on b; on a, the operation group-set removes it from the group`,
    };
  } finally {
    await client?.close().catch(() => {});
    await admin?.close().catch(() => {});
    await Promise.all(occupants.map((c) => c.close().catch(() => {})));
    await b.stop();
    await a.stop();
  }
}

async function propagationPhase(res, probe) {
  await redis.start();
  try {
    const mode = argValue('--propagation') ?? 'both';
    if (mode === 'servers' || mode === 'both') {
      if (serversReady()) res.propagation_servers = await propagationServers(probe);
      else log('    this build has no room enforcement or no group CLI yet: servers skipped, models only');
    }
    if (mode === 'models' || mode === 'both') res.propagation = await propagationModels(probe);
  } finally { await redis.stop(); }
}

// ------------------------------------------------------------------------------------------------
// report

const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v) ? '–' : Number(v).toFixed(d));
const big = (v) => (v === null || v === undefined ? '–' : Math.round(v).toLocaleString('en-US'));

function section(meta, res) {
  const L = [];
  const s = res.seed, m = res.model, p = res.propagation;
  L.push('<!-- pchat:begin -->', '## Persistent-chat model at scale (bench/pchat-scale.mjs)', '');
  L.push(`Generated by \`node bench/pchat-scale.mjs${meta.argv.length ? ` ${meta.argv.join(' ')}` : ''}\` on ${meta.date} (${meta.minutes} min); this section is rewritten by each run of it.`, '');
  L.push(`- Machine: ${meta.cpus} × ${meta.cpuModel}, Linux ${meta.kernel}, Node ${meta.node}; load average before the run ${meta.loadavg}; PostgreSQL ${meta.pg} on loopback (shared_buffers ${meta.sharedBuffers}).`);
  L.push(`- Perch ${meta.version} (commit ${meta.commit}), the built \`dist/\` modules imported in process (storage/open.js, src/pchat/model.js, src/pchat/access.js).`);
  L.push(`- Data (${describeShape(shape)}). Counts in the database: ${big(s.counts.users)} users in ${big(s.counts.org_units)} org units, ${big(s.counts.groups)} groups (${big(s.counts.nesting_edges)} nesting edges, ${big(s.counts.group_members - s.counts.nesting_edges)} user memberships), ${big(s.counts.categories)} categories, ${big(s.counts.rooms)} rooms (${s.counts.privacy.map((x) => `${x.privacy} ${x.type} ${big(x.n)}`).join(', ')}), **${big(s.counts.acl)} access entries** (${big(s.counts.acl_room_members)} room member entries), ${big(s.counts.policies)} policies; database ${big(s.counts.db_size_mb)} MB.`);
  L.push('');
  L.push('```sh', 'npm run build && node bench/pchat-scale.mjs              # seed, model, checks, two-node propagation (~2 min)', 'node bench/pchat-scale.mjs --keep-db perch_pchat --phases seed,model,checks   # keep the seeded database for reruns', 'node bench/pchat-scale.mjs --scale 0.05 --no-docs         # smoke test', '```', '');
  L.push('| what | measure | figure |', '|---|---|---|');
  if (s.reused) L.push('| seed | (database reused, not timed) | – |');
  else {
    L.push(`| seed (fresh database) | migrations + bulk INSERT … SELECT + VACUUM ANALYZE | ${fmt(s.migrate_ms / 1000)} + ${fmt(s.insert_ms / 1000)} + ${fmt(s.vacuum_ms / 1000)} s = **${fmt((s.migrate_ms + s.insert_ms + s.vacuum_ms) / 1000)} s** (then ${big(OCCUPANTS + 2)} XMPP accounts for the propagation phase by \`addUser\`, 4096 SCRAM iterations: ${fmt(s.accounts_ms / 1000)} s) |`);
    const acl = s.steps.filter((x) => x.label.startsWith('acl')).reduce((a, x) => a + x.ms, 0);
    L.push(`|  | of which access entries (${big(s.counts.acl)} rows) | ${fmt(acl / 1000)} s |`);
  }
  if (m) {
    const st = m.start;
    const ms = st.map((x) => x.ms), rss = st.map((x) => x.rss_mb), heap = st.map((x) => x.heap_mb);
    L.push(`| ChatModel.start() (${big(m.rooms_loaded)} rooms, their lists, 100 categories, policies, group nesting) | time, ${st.length} starts in one process | ${ms.map((x) => fmt(x, 0)).join(' / ')} ms |`);
    L.push(`|  | RSS / heap it adds (after GC), first start in the process | +${fmt(rss[0], 0)} MiB RSS (process ${fmt(st[0].rss_total_mb, 0)} MiB), +${fmt(heap[0], 0)} MiB heap (${fmt(st[0].released_heap_mb, 0)} MiB freed when the model is dropped) |`);
    if (m.load_single_us) {
      const u = (x) => `${fmt(x.p50 / 1000, 2)} / ${fmt(x.p99 / 1000, 2)} ms (max ${fmt(x.max / 1000, 1)})`;
      L.push(`| principal sets, cold: Directory.load, one user per call | p50 / p99 over ${big(m.load_single_us.n)} users | ${u(m.load_single_us)} |`);
      L.push(`| principal sets, cold: 500 users per call | p50 / p99 per call over ${big(m.load_batch_ms.n)} calls | ${fmt(m.load_batch_ms.p50)} / ${fmt(m.load_batch_ms.p99)} ms (${fmt(m.load_batch_per_user_us, 0)} µs per user); ${fmt(m.principals_per_user.mean)} principals per user |`);
      L.push(`| **join check, cold** (model.subjectOf loading the user, then canJoin) | p50 / p99 over ${big(m.cold_check_us.n)} users | **${u(m.cold_check_us)}** |`);
      const w = (x) => `**${fmt(x.p50, 2)} / ${fmt(x.p99, 2)} µs** (max ${fmt(x.max, 0)}; allowed ${fmt(x.allowed_share * 100)} %)`;
      L.push(`| **join check, warm**: model.subject (policy evaluation) + canJoin | p50 / p99 over ${big(m.pairs)} random (user, room) pairs of ${big(m.warm_users)} cached users | ${w(m.canJoin_us)} |`);
      L.push(`| **post check, warm**: model.subject + canPost | same pairs | ${w(m.canPost_us)} |`);
      L.push(`|  | joinRefusal (the condition and text a refused join gets) | ${w(m.joinRefusal_us)} |`);
      L.push(`|  | of which model.subject alone (principal set look-up + policy evaluation over ${big(s.counts.policies_by_scope?.user)} user and ${big(s.counts.policies_by_scope?.group)} group entries) | ${fmt(m.subject_only_us.p50, 2)} / ${fmt(m.subject_only_us.p99, 2)} µs |`);
      L.push(`|  | canJoin alone, subject built beforehand | ${fmt(m.canJoin_prebuilt_us.p50, 2)} / ${fmt(m.canJoin_prebuilt_us.p99, 2)} µs |`);
      L.push(`|  | the timer alone (hrtime pair), included above | ${fmt(m.timer_us.p50, 2)} / ${fmt(m.timer_us.p99, 2)} µs; untimed: ${big(m.canJoin_per_s)} canJoin/s on one core |`);
    }
  }
  if (p) {
    const rows = (scoped) => {
      const rs = p.runs.filter((x) => Boolean(x.scoped) === scoped);
      return { n: rs.length, ch: stats(rs.map((x) => x.change_to_enforced_ms)), rc: stats(rs.map((x) => x.b_received_to_enforced_ms)), wr: stats(rs.map((x) => x.write_ms)) };
    };
    const sc = rows(true), un = rows(false);
    L.push(`| **group change → enforced on the other node, model nodes** (a group in the member lists of ${big(s.counts.target_rooms)} rooms; ${sc.n} + ${un.n} changes, alternating) | two ChatModel processes (a, b) on the seeded database, each with its own RedisSessionStore on a private redis-server as the cluster bus (no XMPP); a removes the user from the group (DirectoryStore.editGroupMembers, then model.publish of the change with the reach the group-set operation gives it: that user's set); b, on the change, re-checks the ${big(p.b_occupants)} occupants it holds in ${big(p.b_rooms)} rooms (ensureSubjects + canJoin, as the rooms do): change → b's model answers canJoin false, p50 / max | **${fmt(sc.ch.p50)} / ${fmt(sc.ch.max)} ms** (a's write ${fmt(sc.wr.p50)} ms p50; b from hearing of it ${fmt(sc.rc.p50)} ms p50) |`);
    L.push(`|  | the same change published without its reach (every node forgets every principal set, as any directory change did before 8783aff): b re-reads all ${big(p.b_occupants)} occupants' sets | ${fmt(un.ch.p50)} / ${fmt(un.ch.max)} ms (b from hearing of it ${fmt(un.rc.p50)} ms p50) |`);
  }
  const ps = res.propagation_servers;
  if (ps) {
    const codes = [...new Set(ps.runs.map((x) => x.codes.join('+')))].join(', ');
    const by = (via) => ps.runs.filter((x) => x.via === via);
    const ad = stats(by('adhoc').map((x) => x.change_to_enforced_ms)), adOp = stats(by('adhoc').map((x) => x.op_ms));
    const cl = stats(by('cli').map((x) => x.change_to_enforced_ms)), clOp = stats(by('cli').map((x) => x.op_ms));
    L.push(`| **group change → enforced on the other node, servers** (the same group and room; ${ad.n} + ${cl.n} changes, alternating) | ${ps.describe}. As an XEP-0050 command (\`group-set\`, form submitted with execute) from an admin's client on a: command sent → the occupant's unavailable presence (status ${codes}) arrives from b, p50 / max | **${fmt(ad.p50)} / ${fmt(ad.max)} ms** (the command's reply: ${fmt(adOp.p50)} ms p50) |`);
    L.push(`|  | the same through the CLI, \`perch group set ${ps.group} --members -${ps.user}\` on a's admin socket: process started → presence from b, p50 / max (a read-only \`perch group show\` takes ${fmt(ps.cli_idle_ms.p50, 0)} ms p50: process start, socket, reply) | ${fmt(cl.p50)} / ${fmt(cl.max)} ms (the CLI exits after ${fmt(clOp.p50, 0)} ms p50) |`);
    L.push(`|  | server start with this model (a / b), RSS after start | ${fmt(ps.start_a_ms / 1000)} / ${fmt(ps.start_b_ms / 1000)} s; ${fmt(ps.rss_a_mb, 0)} / ${fmt(ps.rss_b_mb, 0)} MiB |`);
  }
  L.push('');
  L.push('<!-- pchat:end -->');
  return L.join('\n');
}


// ------------------------------------------------------------------------------------------------

async function main() {
  if (!fs.existsSync(path.join(DIST, 'src/pchat/model.js'))) throw new Error('build Perch first: npm run build');
  fs.mkdirSync(path.dirname(RAW), { recursive: true });
  const t0 = Date.now();
  const pgInfo = (await pgAdmin("SELECT current_setting('server_version') AS v, current_setting('shared_buffers') AS sb")).rows[0];
  let commit = '?';
  try { commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim(); } catch { /* not a checkout */ }
  const meta = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? '?',
    kernel: os.release(), node: process.version, loadavg: os.loadavg().map((v) => v.toFixed(2)).join(' '),
    pg: pgInfo.v, sharedBuffers: pgInfo.sb, commit, argv,
    version: JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version,
  };
  log(`pchat bench: scale ${SCALE} (${shape.users} users, ${shape.rooms} rooms), database ${DB}, phases ${PHASES.join(',')}`);
  const res = {};
  try {
    log(`==== ${stamp()} seed`);
    res.seed = await seed();
    log(`    ${stamp()} ${JSON.stringify(res.seed.counts)}; seed ${res.seed.total_ms ? `${(res.seed.total_ms / 1000).toFixed(1)} s` : 'reused'}; probe ${JSON.stringify(res.seed.probe)}`);
    if (PHASES.includes('model') || PHASES.includes('checks')) { log(`==== ${stamp()} model`); await modelPhase(res); }
    if (PHASES.includes('propagation')) { log(`==== ${stamp()} propagation`); await propagationPhase(res, res.seed.probe); }
  } finally {
    meta.minutes = Math.round((Date.now() - t0) / 60000);
    fs.writeFileSync(RAW, JSON.stringify({ meta, shape, res }, null, 1));
    if (!KEEP_DB) await pgAdmin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch((e) => log(`drop ${DB}: ${e.message}`));
    fs.rmSync(WORK, { recursive: true, force: true });
  }
  if (WRITE_DOCS && SCALE === 1) writeDocsSection(ROOT, section(meta, res), 'pchat', 'bench/pchat-scale.mjs', log);
  else log(section(meta, res));
  log(`raw results: ${path.relative(ROOT, RAW)}`);
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, async () => { await redis.stop().catch(() => {}); if (!KEEP_DB) await pgAdmin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch(() => {}); process.exit(130); });
main().then(() => process.exit(0)).catch(async (e) => {
  process.stderr.write(`pchat bench: ${e?.stack ?? e}\n`);
  await redis.stop().catch(() => {});
  process.exit(1);
});
