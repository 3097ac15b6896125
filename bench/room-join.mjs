#!/usr/bin/env node
// Room joins with history, two Perch builds in one run: each round starts a fresh server, logs in 200
// clients, makes a room with a subject and 30 messages, then lets the clients join it with
// <history maxstanzas='20'/>, 10 at a time, and leave after the subject (the join-history case of
// bench/muc.mjs), several times over the same server: the first pass meets a freshly started process
// (what bench/muc.mjs times), the later ones a warm one. Reports each pass's join→subject latency and the
// server's CPU per join over the warm passes (from /proc: a join and its leave), and in the first pass
// on its main thread and on its other threads (V8 compiling and collecting in the background), the
// builds alternating round by round.
//
//   git worktree add /tmp/join-before <commit> && (cd /tmp/join-before && ln -s $PWD/node_modules && npm run build)
//   npm run build && node bench/room-join.mjs --before /tmp/join-before [--rounds 4] [--passes 8]
//   node bench/room-join.mjs --before . --after-node-flags '--v8-pool-size=1'   # a Node setting, same build
//
// Ports (PERCH_JOIN_PORT, default 34222): c2s P, private redis-server P+157. The clients run in a child
// process of their own (this script with --client), the shared xmppbench's client library
// (../shared/bench/lib).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const XB_LIB = path.resolve(ROOT, '..', 'shared', 'bench', 'lib');
const argv = process.argv.slice(2);
const arg = (name, dflt) => { const i = argv.indexOf(name); return i === -1 ? dflt : argv[i + 1]; };
const DOMAIN = 'bench.local';
const JOINS = 200, CONCURRENCY = 10, HISTORY = 20, PRELOAD = 30;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stdout.write(`${s}\n`);
/** The server's CPU (1/100 s) on its main thread and on all its other threads (V8's compiler and GC helpers, libuv's pool). */
const threadTicks = (pid) => {
  let main = 0, other = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const f = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
    const t = Number(f[11]) + Number(f[12]);
    if (tid === String(pid)) main += t; else other += t;
  }
  return { main, other };
};
const quantile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];

if (argv[0] === '--client') await client(Number(argv[1]), Number(argv[2]), Number(argv[3]));
else await runner();

/** The load: one line of JSON per pass on stdout. */
async function client(port, passes, serverPid) {
  const lib = async (f) => import(pathToFileURL(path.join(XB_LIB, f)).href);
  const { makeClient, runLimited, leaveRoom } = await lib('ops.mjs');
  const { createRoom, setSubject } = await lib('muc.mjs');
  const { nowMs } = await lib('client.mjs');
  const conn = { host: '127.0.0.1', port, domain: DOMAIN, tls: 'none', mech: 'SCRAM-SHA-1', userPrefix: 'user', password: 'bench-{n}', timeoutMs: 30000 };
  const room = `join-${Date.now().toString(36)}@conference.${DOMAIN}`;
  const owner = makeClient(conn, 0, { resource: 'owner' });
  await owner.login();
  await createRoom(owner, room, { archive: true, leave: false, nick: 'owner' });
  setSubject(owner, room, 'bench subject');
  await new Promise((resolve) => {
    let got = 0;
    owner.onMessage = (el) => { if (el.getChildText('body')?.startsWith('h|') && ++got === PRELOAD) resolve(); };
    for (let i = 0; i < PRELOAD; i++) owner.send(`<message to='${room}' type='groupchat'><body>h|${i} history filler message</body></message>`);
  });
  owner.onMessage = null;
  const clients = [];
  await runLimited(Array.from({ length: JOINS }, (_, i) => i + 1), 50, async (n) => { const c = makeClient(conn, n); await c.login(); clients[n - 1] = c; });
  await sleep(300);
  for (let pass = 0; pass < passes; pass++) {
    const lat = [];
    let incomplete = 0;
    const threads0 = threadTicks(serverPid);
    const t00 = nowMs();
    await runLimited(clients.map((_, i) => i), CONCURRENCY, async (i) => {
      const c = clients[i];
      const nick = `j${i}`;
      let hist = 0;
      const t0 = nowMs();
      await new Promise((resolve) => {
        c.onMessage = (el) => {
          if (el.getChild('subject') && !el.getChild('body')) resolve();
          else if (el.getChild('delay')) hist++;
        };
        c.send(`<presence to='${room}/${nick}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='${HISTORY}'/></x></presence>`);
      });
      lat.push(nowMs() - t0);
      if (hist !== HISTORY) incomplete++;
      c.onMessage = null;
      leaveRoom(c, room, nick);
    });
    const wallMs = nowMs() - t00;
    await sleep(200); // the last leaves are handled
    const threads1 = threadTicks(serverPid);
    const cpuMs = (threads1.main + threads1.other - threads0.main - threads0.other) * 10;
    lat.sort((a, b) => a - b);
    process.stdout.write(`${JSON.stringify({ pass, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), max: lat.at(-1), joins_per_s: JOINS / wallMs * 1000, cpu_ms: cpuMs, main_ms: (threads1.main - threads0.main) * 10, other_ms: (threads1.other - threads0.other) * 10, incomplete })}\n`);
    await sleep(300);
  }
  for (const c of clients) c.close();
  owner.close();
  process.exit(0);
}

async function runner() {
  const { default: pg } = await import('pg');
  const { waitPort, createBenchAccounts, snapshotDist, nodeFlags, perchNodeFlags } = await import('./lib.mjs');
  const BEFORE = arg('--before', null);
  if (!BEFORE) { console.error('usage: node bench/room-join.mjs --before DIR [--rounds N] [--passes N] [--before-node-flags F] [--after-node-flags F]'); process.exit(2); }
  const ROUNDS = Number(arg('--rounds', 4));
  const PASSES = Number(arg('--passes', 8));
  const PORT = Number(process.env.PERCH_JOIN_PORT ?? 34222);
  const REDIS_PORT = PORT + 157;
  const PG_ADMIN_URL = process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/test';
  const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-join-'));
  const admin = async (sql) => {
    const c = new pg.Client({ connectionString: PG_ADMIN_URL });
    await c.connect();
    try { return (await c.query(sql)).rows; } finally { await c.end(); }
  };
  const builds = [{ name: 'before', root: path.resolve(BEFORE) }, { name: 'after', root: ROOT }]
    .map((b) => ({ ...b, db: `perch_join_bench_${b.name}_${process.pid}`, config: path.join(WORK, `${b.name}.json`), passes: [] }));

  const provision = async (b) => {
    b.dist = snapshotDist(b.root, path.join(WORK, `${b.name}-dist`), path.join(ROOT, 'node_modules'));
    await admin(`CREATE DATABASE ${b.db}`);
    const url = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${b.db}`);
    fs.writeFileSync(b.config, JSON.stringify({
      domain: DOMAIN, logLevel: 'warn', databaseUrl: url, redisUrl: `redis://127.0.0.1:${REDIS_PORT}/0`, workers: 1,
      listen: { c2s: { host: '127.0.0.1', port: PORT }, c2sDirectTls: null, component: null, metrics: null, upload: null, websocket: null, websocketPlain: null },
      tls: { requireStartTls: false },
      limits: { authFailuresPerIp: 1_000_000, authFailuresPerAccount: 1_000_000, bytesPerSecond: 64 * 1024 * 1024, authTimeout: 120 },
      ping: { idleSeconds: 3600, timeoutSeconds: 60 },
      muc: { messagesPerSecond: 1_000_000, messageBurst: 1_000_000 },
    }, null, 2));
    const { openDataStores } = await import(path.join(b.dist, 'storage/open.js'));
    const { addUser } = await import(path.join(b.dist, 'src/accounts.js'));
    const { loadConfig } = await import(path.join(b.dist, 'src/config.js'));
    const stores = await openDataStores({ databaseUrl: url, dataDir: null });
    await createBenchAccounts(addUser, stores, DOMAIN, JOINS, loadConfig(b.config, {}).scramIterations);
    await stores.db.close();
  };

  const round = async (b, r) => {
    const proc = spawn(process.execPath, [...perchNodeFlags(b.dist), ...nodeFlags(argv, b.name), path.join(b.dist, 'src/cli.js'), '--config', b.config, 'start'], { stdio: ['ignore', 'inherit', 'inherit'] });
    const exited = new Promise((res) => proc.once('exit', res));
    try {
      await waitPort(PORT, 30000);
      await sleep(500);
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--client', String(PORT), String(PASSES), String(proc.pid)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      const code = await new Promise((res) => child.on('exit', res));
      const passes = out.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
      if (code !== 0 || passes.length !== PASSES) { log(`    !! [${b.name}] round ${r + 1}: the clients exited with ${code}`); return; }
      b.passes.push(passes);
      const warm = passes.slice(1);
      const cpuPerJoin = warm.reduce((s, p) => s + p.cpu_ms, 0) / (warm.length * JOINS) * 1000;
      log(`[${b.name}] round ${r + 1}: first pass p50 ${passes[0].p50.toFixed(1)} / p99 ${passes[0].p99.toFixed(1)} ms, server CPU ${passes[0].main_ms} ms main thread + ${passes[0].other_ms} ms other threads; warm p99 ${warm.map((p) => p.p99.toFixed(1)).join(' ')} ms; server ${cpuPerJoin.toFixed(0)} µs CPU per warm join${passes.some((p) => p.incomplete) ? '; SOME HISTORY INCOMPLETE' : ''}`);
    } finally {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
      await exited;
      clearTimeout(t);
    }
  };

  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : null; };
  execFileSync('redis-server', ['--port', String(REDIS_PORT), '--save', '', '--appendonly', 'no', '--daemonize', 'yes', '--dir', WORK]);
  try {
    for (const b of builds) await provision(b);
    for (let r = 0; r < ROUNDS; r++) {
      for (const b of r % 2 === 0 ? builds : [...builds].reverse()) {
        execFileSync('redis-cli', ['-p', String(REDIS_PORT), 'FLUSHALL']);
        await round(b, r);
      }
    }
  } finally {
    try { execFileSync('redis-cli', ['-p', String(REDIS_PORT), 'shutdown', 'nosave']); } catch { /* already gone */ }
    for (const b of builds) await admin(`DROP DATABASE IF EXISTS ${b.db} WITH (FORCE)`).catch(() => {});
    fs.rmSync(WORK, { recursive: true, force: true });
  }

  log(`\nroom joins with ${HISTORY} history, ${JOINS} joins ${CONCURRENCY} at a time, ${PASSES} passes per fresh server; medians over ${ROUNDS} round(s)`);
  log('| build | first pass p50 / p99 ms | first pass server CPU ms: main thread + other threads | warm passes p50 / p99 ms | warm joins/s | server µs CPU per warm join |');
  log('|---|---|---|---|---|---|');
  const m = {};
  for (const b of builds) {
    const first = b.passes.map((ps) => ps[0]);
    const warm = b.passes.flatMap((ps) => ps.slice(1));
    m[b.name] = {
      p50: median(first.map((p) => p.p50)), p99: median(first.map((p) => p.p99)),
      main: median(first.map((p) => p.main_ms)), other: median(first.map((p) => p.other_ms)),
      wp50: median(warm.map((p) => p.p50)), wp99: median(warm.map((p) => p.p99)), rate: median(warm.map((p) => p.joins_per_s)),
      cpu: median(b.passes.map((ps) => ps.slice(1).reduce((s, p) => s + p.cpu_ms, 0) / ((ps.length - 1) * JOINS) * 1000)),
    };
    const x = m[b.name];
    log(`| ${b.name} | ${x.p50?.toFixed(1)} / ${x.p99?.toFixed(1)} | ${x.main} + ${x.other} | ${x.wp50?.toFixed(1)} / ${x.wp99?.toFixed(1)} | ${x.rate?.toFixed(0)} | ${x.cpu?.toFixed(0)} |`);
  }
  const ratio = (a, b) => (a && b ? (a / b).toFixed(2) : '–');
  log(`after / before: first pass p99 ${ratio(m.after.p99, m.before.p99)}×, warm p99 ${ratio(m.after.wp99, m.before.wp99)}×, warm joins/s ${ratio(m.after.rate, m.before.rate)}×, server CPU per warm join ${ratio(m.after.cpu, m.before.cpu)}×`);
}
