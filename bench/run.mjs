#!/usr/bin/env node
// The benchmark run behind `npm run bench`: Perch and ejabberd measured in the same run with the same
// load generator (bench/xmppload.mjs), case by case and alternately, each case on a freshly started
// server process; then the parser micro-benchmark; the figures go to docs/benchmarks.md.
//
//   npm run bench                                   full run (2,000-user login storms, 500 chat pairs)
//   node bench/run.mjs --quick                      small sizes, a couple of minutes
//   node bench/run.mjs --no-ejabberd                Perch only
//   node bench/run.mjs --profile                    also CPU-profile Perch in each case (top frames printed)
//   node bench/run.mjs --no-docs                    do not rewrite docs/benchmarks.md
//   node bench/run.mjs --archive-chat               Perch archives one-to-one chat (its default; ejabberd here does not)
//
// Perch runs from dist/ with a temporary data dir (PGlite storage, in-process session store) and a
// temporary config on 127.0.0.1:28222; ejabberd 23 (Debian package) is started by
// ../shared/bench/peers/ejabberd.sh (a copy with ports moved to 28xxx) with mnesia storage on
// 127.0.0.1:28522, domain bench.local.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { waitPort, portFree, createBenchAccounts } from './lib.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const args = new Set(process.argv.slice(2));
const QUICK = args.has('--quick');
const WITH_EJABBERD = !args.has('--no-ejabberd');
const PROFILE = args.has('--profile');
const WRITE_DOCS = !args.has('--no-docs');
// --pg: Perch on real PostgreSQL (a fresh database on the server of PERCH_BENCH_PG, dropped after) and
// real Redis (PERCH_BENCH_REDIS) instead of its embedded defaults: the production configuration.
const WITH_PG = args.has('--pg');
const ARCHIVE_CHAT = args.has('--archive-chat');
const PG_ADMIN_URL = process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/test';
const REDIS_URL = process.env.PERCH_BENCH_REDIS ?? 'redis://127.0.0.1:6379';
const PG_DB = `perch_bench_${process.pid}`;
const PG_URL = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${PG_DB}`);
const PEERS_DIR = process.env.PEERS_DIR ?? path.resolve(ROOT, '..', 'shared', 'bench', 'peers');
const EJABBERD_DIR = process.env.EJABBERD_BENCH_DIR ?? path.join(os.tmpdir(), 'perch-bench-ejabberd');
const DOMAIN = 'bench.local';
const PERCH_PORT = 28222;
// ejabberd.sh and its config template fix c2s 25222 and Erlang distribution 25369; the run uses a copy
// of both with ports moved into this benchmark's range (28xxx), so it cannot collide with another user
// of the shared script.
const EJABBERD_PORT = 28522;
const EJABBERD_DIST_PORT = 28369;
const N_LOGIN = QUICK ? 200 : 2000;
const N_LOGIN_TLS = QUICK ? 100 : 1000;
const PAIRS = QUICK ? 50 : 500;
const N_USERS = Math.max(N_LOGIN, N_LOGIN_TLS, 2 * PAIRS);
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-bench-'));
const RAW = path.join(BENCH, 'results', 'latest.jsonl');
const PROFILE_DIR = path.join(BENCH, 'results', 'profiles'); // kept: open them in Chrome DevTools
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stdout.write(`${s}\n`);

// ------------------------------------------------------------------------------------------------
// the cases: [tag, xmppload arguments]

const CASES = [
  [`login-scram-cold-${N_LOGIN}`, ['--scenario', 'login', '--users', N_LOGIN, '--concurrency', 50], { coldCache: true }],
  [`login-scram-${N_LOGIN}`, ['--scenario', 'login', '--users', N_LOGIN, '--concurrency', 50]],
  [`login-starttls-scram-${N_LOGIN_TLS}`, ['--scenario', 'login', '--users', N_LOGIN_TLS, '--concurrency', 50, '--tls', 'starttls']],
  [`chat-${PAIRS}p-r2`, ['--scenario', 'chat', '--pairs', PAIRS, '--rate', 2, '--messages', 20, '--drain-ms', 10000]],
  [`chat-${PAIRS}p-sat`, ['--scenario', 'chat', '--pairs', PAIRS, '--window', 10, '--messages', 40, '--drain-ms', 10000]],
];

// ------------------------------------------------------------------------------------------------
// helpers


/** Runs xmppload, echoes its human summary, returns its JSON line. */
function xmppload(label, tag, argv) {
  return new Promise((resolve) => {
    const full = [path.join(BENCH, 'xmppload.mjs'), ...argv.map(String), '--label', label, '--tag', tag, '--out', RAW];
    log(`---- [${label}] ${tag}`);
    const child = spawn(process.execPath, full, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('exit', (code) => {
      const lines = out.trim().split('\n');
      for (const l of lines) if (!l.startsWith('{')) log(`    ${l}`);
      const json = lines.filter((l) => l.startsWith('{')).pop();
      if (code !== 0 || !json) { log(`    !! xmppload exited with ${code}`); return resolve(null); }
      resolve(JSON.parse(json));
    });
  });
}

// ------------------------------------------------------------------------------------------------
// Perch

async function pgAdmin(sql) {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try { await client.query(sql); } finally { await client.end(); }
}

const perch = {
  dir: path.join(WORK, 'perch'),
  config: path.join(WORK, 'perch.yaml'),
  proc: null,
  profiles: [],

  async provision() {
    fs.mkdirSync(this.dir, { recursive: true });
    const cfg = {
      domain: DOMAIN, dataDir: this.dir, logLevel: 'warn',
      listen: { c2s: { host: '127.0.0.1', port: PERCH_PORT }, c2sDirectTls: null, component: null, metrics: null, upload: null },
      tls: { requireStartTls: false },
      // a login storm from one address must not trip the abuse limits
      limits: { authFailuresPerIp: 1_000_000, authFailuresPerAccount: 1_000_000, bytesPerSecond: 64 * 1024 * 1024, authTimeout: 120 },
      ping: { idleSeconds: 3600, timeoutSeconds: 60 },
      // ejabberd's configuration here archives no one-to-one chat (mod_mam default: never); Perch does the
      // same unless --archive-chat asks for its own default (every chat message archived before delivery).
      archive: { defaultPolicy: ARCHIVE_CHAT ? 'always' : 'never' },
      ...(WITH_PG ? { databaseUrl: PG_URL, redisUrl: REDIS_URL } : {}),
    };
    if (WITH_PG) await pgAdmin(`CREATE DATABASE ${PG_DB}`);
    fs.writeFileSync(this.config, JSON.stringify(cfg, null, 2)); // JSON is YAML
    // One process creates every account (PGlite allows one process per data dir), before the server starts.
    const { openDataStores } = await import(path.join(ROOT, 'dist/storage/open.js'));
    const { addUser } = await import(path.join(ROOT, 'dist/src/accounts.js'));
    const { loadConfig } = await import(path.join(ROOT, 'dist/src/config.js'));
    const config = loadConfig(this.config, {});
    const t0 = Date.now();
    const stores = await openDataStores({ databaseUrl: WITH_PG ? PG_URL : null, dataDir: this.dir });
    await createBenchAccounts(addUser, stores, DOMAIN, N_USERS, config.scramIterations);
    await stores.db.close();
    const secs = (Date.now() - t0) / 1000;
    log(`perch: ${N_USERS + 1} accounts provisioned in ${secs.toFixed(1)} s (${config.scramIterations} SCRAM iterations)`);
    return { accounts: N_USERS + 1, seconds: secs, iterations: config.scramIterations };
  },

  async start(tag) {
    const flags = PROFILE ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR, '--cpu-prof-name', `perch-${tag}.cpuprofile`] : [];
    this.proc = spawn(process.execPath, [...flags, path.join(ROOT, 'dist/src/cli.js'), '--config', this.config, 'start'], { stdio: ['ignore', 'inherit', 'inherit'] });
    this.exited = new Promise((r) => this.proc.once('exit', r));
    this.tag = tag;
    await waitPort(PERCH_PORT, 30000);
    await sleep(500);
    return this.proc.pid;
  },

  async stop() {
    if (!this.proc) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 15000);
    await this.exited;
    clearTimeout(t);
    this.proc = null;
    if (PROFILE) this.profiles.push([this.tag, path.join(PROFILE_DIR, `perch-${this.tag}.cpuprofile`)]);
  },
};

// ------------------------------------------------------------------------------------------------
// ejabberd (through the shared peer script)

const ejabberd = {
  script: null,
  prepare() {
    const dir = path.join(WORK, 'peers');
    fs.mkdirSync(dir, { recursive: true });
    const patch = (text) => text.replaceAll('25222', String(EJABBERD_PORT)).replaceAll('25369', String(EJABBERD_DIST_PORT))
      .replaceAll('ejabberd-bench@localhost', 'perch-bench-ejabberd@localhost');
    for (const f of ['ejabberd.sh', 'ejabberd.yml.tmpl']) fs.writeFileSync(path.join(dir, f), patch(fs.readFileSync(path.join(PEERS_DIR, f), 'utf8')), { mode: 0o755 });
    this.script = path.join(dir, 'ejabberd.sh');
  },
  sh(...a) {
    return execFileSync(this.script, a, { env: { ...process.env, BENCH_DIR: EJABBERD_DIR }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  },
  pid() { return Number(fs.readFileSync(path.join(EJABBERD_DIR, 'server.pid'), 'utf8').trim()); },
  async provision() {
    if (!(await portFree(EJABBERD_PORT))) throw new Error(`port ${EJABBERD_PORT} is busy (another ejabberd?)`);
    this.prepare();
    log(this.sh('start', 'mnesia'));
    // accounts by XEP-0077, which the peer config enables for benchmarks only
    const r = await xmppload('ejabberd-mnesia', 'register', ['--scenario', 'register', '--port', EJABBERD_PORT, '--domain', DOMAIN,
      '--user-start', 0, '--users', N_USERS + 1, '--concurrency', 20]);
    if (!r || r.result.failed > 0) throw new Error('ejabberd provisioning failed');
    return { accounts: r.result.created + r.result.exists, per_s: r.result.per_s };
  },
  async start() { log(`    ${this.sh('restart')}`); await sleep(500); return this.pid(); },
  async stop() { /* kept running between cases; restarted before each */ },
  shutdown() { try { log(this.sh('stop')); } catch (e) { log(`ejabberd stop: ${e.message}`); } },
  version() {
    try { return execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'ejabberd'], { encoding: 'utf8' }); } catch { return '?'; }
  },
};

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

function rowsFor(tag, p, e) {
  const P = p?.result, E = e?.result;
  const rows = [];
  const cpu = (r) => (r ? `${fmt(r.resources.server_cpu_pct, 0)}% / ${fmt(r.resources.loadgen_cpu_pct, 0)}% / ${fmt(r.resources.other_cpu_pct, 0)}%` : '–');
  const lat = (r) => (r ? `${fmt(r.latency_ms.p50)} / ${fmt(r.latency_ms.p99)} / ${fmt(r.latency_ms.max, 0)}` : '–');
  if (tag.startsWith('login')) {
    rows.push(['logins/s', P ? fmt(P.per_s, 0) : '–', E ? fmt(E.per_s, 0) : '–', ratio(P?.per_s, E?.per_s)]);
    rows.push(['latency p50 / p99 / max ms', lat(P), lat(E), ratio(P?.latency_ms.p50, E?.latency_ms.p50) + ' (p50)']);
    const kb = (r) => (r ? `${fmt(r.kb_per_session)} (${fmt(r.rss_before_kb / 1024, 0)}→${fmt(r.rss_after_kb / 1024, 0)} MiB)` : '–');
    rows.push(['server kB per idle session (RSS delta)', kb(P), kb(E), ratio(P?.kb_per_session, E?.kb_per_session)]);
    rows.push(['ok / failed; client PBKDF2 computed', P ? `${P.ok} / ${P.failed}; ${P.client_pbkdf2_computed}` : '–', E ? `${E.ok} / ${E.failed}; ${E.client_pbkdf2_computed}` : '–', '']);
  } else {
    rows.push(['delivered/s', P ? big(P.delivered_per_s) : '–', E ? big(E.delivered_per_s) : '–', ratio(P?.delivered_per_s, E?.delivered_per_s)]);
    rows.push(['latency p50 / p99 / max ms', lat(P), lat(E), ratio(P?.latency_ms.p50, E?.latency_ms.p50) + ' (p50)']);
    const chk = (r) => (r ? `${r.delivered}/${r.expected} ${r.all_delivered_in_order ? '✓ in order' : `✗ (bounced ${r.errors_back}, out of order ${r.out_of_order})`}` : '–');
    rows.push(['delivered / expected, order', chk(P), chk(E), '']);
  }
  rows.push(['CPU server / load generator / other', cpu(P), cpu(E), '']);
  // server CPU time per unit of work: the figure least affected by other jobs on the host
  const isLogin = tag.startsWith('login');
  const per = (r) => (r ? (r.resources.server_cpu_pct / 100) * r.resources.wall_s * (isLogin ? 1000 : 1e6) / (isLogin ? r.ok : r.delivered) : null);
  rows.push([isLogin ? 'server CPU ms per login' : 'server CPU µs per delivered message', fmt(per(P), isLogin ? 2 : 0), fmt(per(E), isLogin ? 2 : 0), ratio(per(P), per(E))]);
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

function writeDocs(meta, results, parser, profiles) {
  const file = path.join(ROOT, 'docs', 'benchmarks.md');
  let notes = '';
  const mucSections = []; // written by the other benchmark scripts (bench/muc.mjs, search.mjs …), kept as they are
  try {
    const old = fs.readFileSync(file, 'utf8');
    const i = old.indexOf('<!-- notes -->'); if (i !== -1) notes = old.slice(i);
    // Every section another benchmark script wrote (muc, search, pchat, compliance-muc …), in page order.
    for (const key of [...old.matchAll(/<!-- ([a-z0-9-]+):begin -->/g)].map((m) => m[1])) {
      const b = old.indexOf(`<!-- ${key}:begin -->`), e = old.indexOf(`<!-- ${key}:end -->`);
      if (b !== -1 && e > b) mucSections.push(old.slice(b, e + `<!-- ${key}:end -->`.length));
    }
  } catch { /* first run */ }
  const L = [];
  L.push('# Benchmarks', '');
  L.push(`Generated by \`npm run bench\` (\`bench/run.mjs${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}\`) on ${meta.date}. Everything above the notes is rewritten by each run.`, '');
  L.push('## Machine', '');
  L.push(`- ${meta.cpus} × ${meta.cpuModel}, ${meta.memGiB} GiB RAM, Linux ${meta.kernel}, Node ${meta.node}`);
  L.push(`- load average before the run: ${meta.loadavg}; the server, the load generator and the kernel share these cores, and the host runs other jobs (the "other" CPU figure).`);
  L.push(`- Perch ${meta.perchVersion} from \`dist/\` (commit ${meta.commit}), ${WITH_PG ? "PostgreSQL 15 + Redis 7 (real services on loopback)" : "PGlite storage, in-process session store"}, ${meta.perchProvision.iterations} SCRAM iterations, one-to-one archiving ${ARCHIVE_CHAT ? 'on (`archive.defaultPolicy: always`, the default)' : 'off (`archive.defaultPolicy: never`, as ejabberd here)'}; ${meta.perchProvision.accounts} accounts created in ${meta.perchProvision.seconds.toFixed(1)} s by one process (\`addUser\`) before the server starts.`);
  if (meta.ejabberdVersion) L.push(`- ejabberd ${meta.ejabberdVersion} (Debian), mnesia, \`auth_password_format: scram\` (4096 iterations), started by a copy of \`../shared/bench/peers/ejabberd.sh\` (and its config template) with c2s on port ${EJABBERD_PORT}; ${meta.ejabberdProvision?.accounts ?? '?'} accounts registered by XEP-0077 at ${meta.ejabberdProvision?.per_s ?? '?'}/s.`);
  L.push('', '## Commands', '', '```sh');
  L.push('npm run bench                     # this whole page: both servers, then the parser benchmark');
  L.push('node bench/run.mjs --profile      # the same, with a CPU profile of Perch per case');
  L.push(`node bench/xmppload.mjs --scenario login --port ${PERCH_PORT} --domain ${DOMAIN} --users ${N_LOGIN} --concurrency 50 --server-pid PID --scram-cache /tmp/scram.json`);
  L.push(`node bench/xmppload.mjs --scenario chat --port ${PERCH_PORT} --domain ${DOMAIN} --pairs ${PAIRS} --rate 2 --messages 20 --server-pid PID`);
  L.push(`node bench/xmppload.mjs --scenario chat --port ${PERCH_PORT} --domain ${DOMAIN} --pairs ${PAIRS} --window 10 --messages 40 --server-pid PID`);
  L.push('node bench/parser.mjs');
  L.push('```', '');
  L.push('Each case runs on a freshly started server process (same data); cases alternate between the servers so that both see the same machine noise. Latency is end to end: for logins, TCP connect → reply to a ping sent right after the initial presence; for chat, sender\'s write → recipient\'s parse. CPU cells are % of one core over the measured phase (200% = both cores). Ratios are Perch ÷ ejabberd: above 1 is better for rates, below 1 is better for latency, memory and CPU.', '');
  L.push('## XMPP load (bench/xmppload.mjs)', '');
  L.push('| case | metric | Perch | ejabberd | Perch / ejabberd |', '|---|---|---|---|---|');
  for (const [tag] of CASES) {
    const rows = rowsFor(tag, results.perch[tag], results.ejabberd[tag]);
    rows.forEach((r, i) => L.push(`| ${i === 0 ? `**${title(tag)}**` : ''} | ${r.join(' | ')} |`));
  }
  L.push('');
  const perchErrors = CASES.map(([tag]) => [tag, results.perch[tag]?.result?.errors ?? []]).filter(([, e]) => e.length);
  if (perchErrors.length) {
    L.push('First errors Perch returned:', '');
    for (const [tag, errs] of perchErrors) L.push(`- ${tag}: \`${errs[0].replace(/`/g, "'").slice(0, 300)}\``);
    L.push('');
  }
  if (parser) {
    L.push('## Stream parser (bench/parser.mjs)', '');
    L.push(`${parser.input.description}: ${(parser.input.bytes / 1048576).toFixed(1)} MiB, ${big(parser.input.stanzas)} stanzas, fed in ${parser.input.chunk / 1024} KiB chunks; best of ${parser.input.reps} runs after warm-up, one process.`, '');
    L.push('| parser | MB/s | stanzas/s | vs XmlStreamParser |', '|---|---|---|---|');
    const ours = parser.results.find((r) => r.parser.startsWith('XmlStreamParser'));
    for (const r of parser.results) L.push(`| ${r.parser} | ${fmt(r.mb_per_s, 0)} | ${big(r.stanzas_per_s)} | ${ours ? (r.mb_per_s / ours.mb_per_s).toFixed(2) + '×' : ''} |`);
    L.push('');
  }
  if (profiles.length) {
    L.push('## Perch CPU profile (self time, top frames)', '');
    for (const [tag, frames, byPlace] of profiles) {
      L.push(`**${tag}** — by place: ${byPlace.join(', ')}`, '', '| self % | ms | frame |', '|---|---|---|');
      for (const f of frames.slice(0, 10)) L.push(`| ${f.self_pct} | ${f.self_ms} | \`${f.frame}\` |`);
      L.push('');
    }
  }
  L.push('Peer figures measured earlier on this machine (Prosody and ejabberd, with the shared xmppbench harness) are in `../shared/bench/results/peers.md`.', '');
  for (const section of mucSections) L.push(section, '');
  fs.writeFileSync(file, L.join('\n') + '\n' + (notes || '<!-- notes -->\n## Notes\n\n(hand-written notes go here; kept across runs)\n'));
  log(`wrote ${path.relative(ROOT, file)}`);
}

// ------------------------------------------------------------------------------------------------

async function main() {
  fs.mkdirSync(path.dirname(RAW), { recursive: true });
  fs.writeFileSync(RAW, '');
  const commit = (() => { try { return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim(); } catch { return '?'; } })();
  const meta = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? '?',
    memGiB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(), node: process.version, loadavg: os.loadavg().map((v) => v.toFixed(2)).join(' '),
    perchVersion: JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version, commit,
  };
  if (!(await portFree(PERCH_PORT))) throw new Error(`port ${PERCH_PORT} is busy`);
  meta.perchProvision = await perch.provision();
  const servers = [['perch', perch, PERCH_PORT]];
  if (WITH_EJABBERD) {
    meta.ejabberdVersion = ejabberd.version();
    meta.ejabberdProvision = await ejabberd.provision();
    servers.push(['ejabberd', ejabberd, EJABBERD_PORT]);
  }
  const results = { perch: {}, ejabberd: {} };
  try {
    for (const [tag, argv, opts] of CASES) {
      for (const [name, srv, port] of servers) {
        const cache = path.join(WORK, `scram-${name}.json`);
        if (opts?.coldCache) fs.rmSync(cache, { force: true });
        const pid = await srv.start(tag);
        try {
          results[name][tag] = await xmppload(name, tag, [...argv, '--port', port, '--domain', DOMAIN, '--server-pid', pid, '--scram-cache', cache]);
        } finally {
          await srv.stop();
        }
      }
    }
  } finally {
    await perch.stop();
    if (WITH_PG) await pgAdmin(`DROP DATABASE IF EXISTS ${PG_DB}`).catch(() => {});
    if (WITH_EJABBERD) ejabberd.shutdown();
  }
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
  fs.appendFileSync(RAW, JSON.stringify(parser) + '\n');
  if (WRITE_DOCS) writeDocs(meta, results, parser, profiles);
  log(`raw JSON lines: ${path.relative(ROOT, RAW)}`);
  fs.rmSync(WORK, { recursive: true, force: true });
}

main().catch(async (e) => {
  process.stderr.write(`bench: ${e?.stack ?? e}\n`);
  await perch.stop().catch(() => {});
  if (WITH_EJABBERD) ejabberd.shutdown();
  process.exit(1);
});
