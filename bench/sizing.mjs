#!/usr/bin/env node
// The original's sizing, measured on Perch (PostgreSQL + Redis): many idle sessions on one node and on two,
// one room with many occupants, many persistent rooms loaded and unloaded, and a steady message rate across
// them. Writes its section of docs/benchmarks.md (between <!-- sizing:begin --> and <!-- sizing:end -->).
//
//   node bench/sizing.mjs                  everything at full size (about 40 minutes on the 2-core box)
//   node bench/sizing.mjs --short          CI-sized: 500 sessions, a 300-occupant room, 1,000 rooms, 1 minute
//   node bench/sizing.mjs --cases sessions,sessions2,room,rooms    a subset (default: all)
//   --sessions N       sessions on one node (default 20,000; both nodes together get 2N)
//   --occupants N      occupants of the large room (default 16,000)
//   --rooms N          persistent rooms (default 33,000)
//   --rate R --minutes M   messages per second across the rooms, for M minutes (default 24/s for 10)
//   --idle-window S    seconds over which idle CPU is measured (default 120: two ping rounds)
//   --dist DIR         the server build to measure (default: this checkout's dist/), e.g. a copy built before a change
//   --report-only FILE rewrite the section from a run's --json FILE (pass --short too if the run had it)
//   --no-docs          do not touch docs/benchmarks.md;  --json FILE  also write the figures as JSON
//   --idle-unload S    the servers' muc.idleUnloadSeconds (default 60, the server's default; --short: 5)
//   --one-unload       skip the idle unload after creation
//   --check            exit 1 when a correctness check fails (someone missed the post, rooms not unloaded, ...)
//
// Servers: copies of this checkout's dist/ (`perch start`), c2s on 127.0.0.1:35222 (and :35223 for the second
// node), metrics on :35280/:35281, a fresh database perch_sizing_<pid> on the shared PostgreSQL (dropped after)
// and a private redis-server on 127.0.0.1:35379 (PERCH_SIZING_PG / PERCH_SIZING_REDIS_PORT / PERCH_SIZING_PORT
// move them). Two processes on the same PostgreSQL and Redis are one cluster.
// Load: forked workers of this script (raw sockets, SCRAM-SHA-1, substring matching instead of an XML parser),
// at most WORKER_CONNS connections each, 5,000 connections per source address (127.0.0.2-40 in turn, a new
// one for each block of 5,000 of the run: beyond one address's ports, and no case meets another's TIME_WAIT). Each process may hold only `ulimit -n` descriptors (the hard limit
// cannot be raised without privileges); a node therefore holds at most (hard limit - FD_RESERVE) sessions
// and the run says so when it caps a size.
import { fork, spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const argv = process.argv.slice(2);
const has = (f) => argv.includes(f);
const argValue = (name) => { const i = argv.indexOf(name); return i === -1 ? null : argv[i + 1]; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();
const DOMAIN = 'bench.local';
const MUC = `conference.${DOMAIN}`;

if (has('--worker')) runWorker();
else await main();

// =================================================================================================
// the load worker: raw XMPP clients, driven over IPC by the main process

function runWorker() {
  const clients = [];
  /** SCRAM salted passwords by user and salt: a later login of the same account skips PBKDF2. */
  const salted = new Map();
  const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
  const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${DOMAIN}' version='1.0'>`;
  const PING_RE = /<iq\b([^>]*)>\s*<ping xmlns=['"]urn:xmpp:ping['"]\s*\/>\s*<\/iq>/g;
  const BODY_RE = /<body>sz (\d+) ([\d.]+)<\/body>/g;
  const attr = (tag, name) => new RegExp(`\\b${name}=['"]([^'"]*)['"]`).exec(tag)?.[1];
  let pingsAnswered = 0;
  /** Room messages seen: seq → [receive times]; latency samples for the chat phase. */
  const seen = new Map();
  let chatLatencies = null;

  class Client {
    constructor(n, opts) {
      this.n = n; this.user = `user${n}`; this.pass = `bench-${n}`; this.opts = opts;
      this.buf = ''; this.wait = null; this.seq = 0; this.closed = false;
    }
    /** Resolves with the first match of re in what arrives from now on (rejects after ms). */
    expect(re, ms = 120000) {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => { this.wait = null; reject(new Error(`${this.user}: timeout waiting for ${re}`)); }, ms);
        this.wait = { re, resolve: (m) => { clearTimeout(t); resolve(m); }, reject: (e) => { clearTimeout(t); reject(e); } };
        this.scan();
      });
    }
    send(s) { if (!this.closed) this.sock.write(s); }
    onData(d) {
      this.buf += d;
      this.scan();
    }
    scan() {
      let cut = 0;
      const b = this.buf;
      if (this.wait) {
        const m = this.wait.re.exec(b);
        if (m) { const w = this.wait; this.wait = null; cut = m.index + m[0].length; w.resolve(m); }
        else if (b.includes('</stream:stream>') || b.includes('<failure')) { const w = this.wait; this.wait = null; w.reject(new Error(`${this.user}: ${b.slice(-300)}`)); }
      }
      PING_RE.lastIndex = 0;
      for (let m; (m = PING_RE.exec(b));) {
        const id = attr(m[1], 'id'), from = attr(m[1], 'from');
        this.send(`<iq type='result' id='${id}'${from ? ` to='${from}'` : ''}/>`);
        pingsAnswered++;
        cut = Math.max(cut, m.index + m[0].length);
      }
      BODY_RE.lastIndex = 0;
      for (let m; (m = BODY_RE.exec(b));) {
        const at = now();
        const seq = Number(m[1]);
        if (chatLatencies && this.chatReceiver) chatLatencies.push(at - Number(m[2]));
        else { let a = seen.get(seq); if (!a) seen.set(seq, a = []); a.push(at); }
        cut = Math.max(cut, m.index + m[0].length);
      }
      let rest = cut ? this.buf.slice(cut) : this.buf;
      // Nothing is looked for in older text than this (every stanza looked for is shorter).
      if (rest.length > (this.wait ? 65536 : 2048)) rest = rest.slice(-(this.wait ? 65536 : 2048));
      this.buf = rest;
    }
    async login() {
      const { host, port, localAddress, localPort } = this.opts;
      this.sock = net.connect({ host, port, localAddress, localPort });
      this.sock.setEncoding('utf8');
      this.sock.setNoDelay(true);
      this.sock.on('data', (d) => this.onData(d));
      this.sock.on('error', () => {});
      this.sock.on('close', () => { this.closed = true; if (this.wait) { const w = this.wait; this.wait = null; w.reject(new Error(`${this.user}: connection closed`)); } });
      await new Promise((resolve, reject) => { this.sock.once('connect', resolve); this.sock.once('error', reject); });
      let feats = this.expect(/<\/stream:features>/);
      this.send(header);
      await feats;
      const cnonce = crypto.randomBytes(12).toString('base64');
      const bare = `n=${this.user},r=${cnonce}`;
      const challenge = this.expect(/<challenge[^>]*>([^<]*)<\/challenge>/);
      this.send(`<auth xmlns='${NS_SASL}' mechanism='SCRAM-SHA-1'>${Buffer.from(`n,,${bare}`).toString('base64')}</auth>`);
      const serverFirst = Buffer.from((await challenge)[1], 'base64').toString();
      const f = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
      const key = `${this.user}\0${f.s}\0${f.i}`;
      let sp = salted.get(key);
      if (!sp) {
        sp = await new Promise((res, rej) => crypto.pbkdf2(this.pass, Buffer.from(f.s, 'base64'), Number(f.i), 20, 'sha1', (e, k) => (e ? rej(e) : res(k))));
        salted.set(key, sp);
      }
      const clientKey = crypto.createHmac('sha1', sp).update('Client Key').digest();
      const storedKey = crypto.createHash('sha1').update(clientKey).digest();
      const finalBare = `c=biws,r=${f.r}`;
      const sig = crypto.createHmac('sha1', storedKey).update(`${bare},${serverFirst},${finalBare}`).digest();
      for (let i = 0; i < clientKey.length; i++) clientKey[i] ^= sig[i];
      const success = this.expect(/<success\b[^>]*(?:\/>|>[^<]*<\/success>)/);
      this.send(`<response xmlns='${NS_SASL}'>${Buffer.from(`${finalBare},p=${clientKey.toString('base64')}`).toString('base64')}</response>`);
      await success;
      feats = this.expect(/<\/stream:features>/);
      this.send(header);
      await feats;
      const bound = this.expect(/<iq[^>]*\bid=['"]b['"][^>]*>/);
      this.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>s</resource></bind></iq>`);
      const m = await bound;
      if (!/type=['"]result['"]/.test(m[0])) throw new Error(`${this.user}: bind failed`);
      this.send('<presence/>');
    }
    async iq(to, payload) {
      const id = `q${++this.seq}`;
      const r = this.expect(new RegExp(`<iq[^>]*\\bid=['"]${id}['"][^>]*>`));
      this.send(`<iq type='${payload.type ?? 'get'}' id='${id}' to='${to}'>${payload.xml}</iq>`);
      const m = await r;
      if (/type=['"]error['"]/.test(m[0])) throw new Error(`${this.user}: iq to ${to} failed: ${this.buf.slice(0, 400)}`);
    }
    /** Joins (or creates) a room; resolves on the self-presence (status 110). */
    async join(room, nick) {
      const r = this.expect(/<presence\b[^>]*>(?:(?!<\/presence>)[\s\S])*?code=['"]110['"]/);
      this.send(`<presence to='${room}/${nick}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>`);
      return r;
    }
    async leave(room, nick) {
      const r = this.expect(/<presence\b[^>]*type=['"]unavailable['"][^>]*>(?:(?!<\/presence>)[\s\S])*?code=['"]110['"]/);
      this.send(`<presence to='${room}/${nick}' type='unavailable'/>`);
      return r;
    }
    close() { this.closed = true; this.sock?.end('</stream:stream>'); this.sock?.destroy(); }
  }

  /**
   * The k-th connection of the run: its source address (5,000 connections on each of 127.0.0.2-40, so no
   * address runs out of ports, and a case does not meet the previous one's TIME_WAIT); the port is the
   * kernel's choice (a fixed one clashes with other runs' TIME_WAIT).
   */
  const sourceOf = (k) => ({ localAddress: `127.0.0.${2 + (Math.floor(k / 5000) % 39)}` });

  /** Runs fn(item) over items with at most `concurrency` at once; returns per-item milliseconds (NaN: failed). */
  async function pool(items, concurrency, fn) {
    const ms = new Array(items.length).fill(NaN);
    let next = 0, failed = 0, firstError = null;
    await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        const t0 = now();
        try { await fn(items[i], i); ms[i] = now() - t0; } catch (e) { failed++; firstError ??= e.message; }
      }
    }));
    return { ms, failed, firstError };
  }

  const ops = {
    /** Logs in users [from, to) spread over the given ports and source addresses. */
    async login({ from, to, host, ports, concurrency, source }) {
      const items = [];
      for (let n = from; n < to; n++) {
        const c = new Client(n, { host, port: ports[n % ports.length], ...sourceOf(source + n - from) });
        clients.push(c);
        items.push(c);
      }
      const t0 = now();
      const r = await pool(items, concurrency, (c) => c.login());
      return { ms: r.ms, failed: r.failed, firstError: r.firstError, wallMs: now() - t0 };
    },
    /** Every client here joins the room (nick = user name). */
    async join({ room, concurrency }) {
      const t0 = now();
      const r = await pool(clients.filter((c) => !c.closed), concurrency, (c) => c.join(room, c.user));
      return { ms: r.ms, failed: r.failed, firstError: r.firstError, wallMs: now() - t0 };
    },
    async leave({ room, concurrency }) {
      const t0 = now();
      const r = await pool(clients.filter((c) => !c.closed), concurrency, (c) => c.leave(room, c.user));
      return { ms: r.ms, failed: r.failed, firstError: r.firstError, wallMs: now() - t0 };
    },
    /** The first client here posts message seq to the room. */
    async post({ room, seq }) {
      const at = now();
      clients[0].send(`<message to='${room}' type='groupchat' id='p${seq}'><body>sz ${seq} ${at.toFixed(3)}</body></message>`);
      return { at };
    },
    /** Receive times of message seq here, and how many clients have not seen it. */
    async received({ seq }) {
      const times = seen.get(seq) ?? [];
      return { times, clients: clients.filter((c) => !c.closed).length };
    },
    /** Creates persistent rooms (join, submit the owner form, leave), one per client at a time. */
    async create({ names, concurrency }) {
      const t0 = now();
      let k = 0;
      const live = clients.filter((c) => !c.closed);
      const free = [...live];
      const form = `<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_persistentroom'><value>1</value></field></x></query>`;
      const r = await pool(names, Math.min(concurrency, live.length), async (name) => {
        const c = free.pop() ?? live[k++ % live.length];
        try {
          const jid = `${name}@${MUC}`;
          await c.join(jid, 'owner');
          // out again even when the form is refused: an occupied room is never unloaded
          try { await c.iq(jid, { type: 'set', xml: form }); } finally { await c.leave(jid, 'owner'); }
        } finally { free.push(c); }
      });
      return { ms: r.ms, failed: r.failed, firstError: r.firstError, wallMs: now() - t0 };
    },
    /** disco#info to each room (which loads it into memory). */
    async disco({ names, concurrency }) {
      const t0 = now();
      const live = clients.filter((c) => !c.closed);
      const free = [...live];
      const r = await pool(names, Math.min(concurrency, live.length), async (name) => {
        const c = free.pop();
        try { await c.iq(`${name}@${MUC}`, { xml: `<query xmlns='http://jabber.org/protocol/disco#info'/>` }); } finally { free.push(c); }
      });
      return { ms: r.ms, failed: r.failed, firstError: r.firstError, wallMs: now() - t0 };
    },
    /**
     * Pairs (client 2k sends, 2k+1 receives) join their rooms (room i goes to pair i % pairs); then `rate`
     * messages/s to rooms picked at random for `seconds`; latencies are what receivers measured.
     */
    async chat({ names, rate, seconds, concurrency, drainMs }) {
      const live = clients.filter((c) => !c.closed);
      const pairs = Math.floor(live.length / 2);
      const roomsOf = Array.from({ length: pairs }, () => []);
      names.forEach((n, i) => roomsOf[i % pairs].push(`${n}@${MUC}`));
      const tj = now();
      const joins = [];
      for (let p = 0; p < pairs; p++) for (const c of [live[2 * p], live[2 * p + 1]]) { c.chatReceiver = c === live[2 * p + 1]; joins.push([c, p]); }
      const j = await pool(joins, concurrency, async ([c, p]) => { for (const room of roomsOf[p]) await c.join(room, c.user); });
      const joinWallMs = now() - tj;
      chatLatencies = [];
      const t0 = now();
      const total = Math.round(rate * seconds);
      let rnd = 12345;
      const rand = () => { rnd = (rnd * 1103515245 + 12345) & 0x7fffffff; return rnd / 0x80000000; };
      for (let i = 0; i < total; i++) {
        const due = t0 + (i * 1000) / rate;
        const wait = due - now();
        if (wait > 1) await sleep(wait);
        const p = Math.floor(rand() * pairs);
        const room = roomsOf[p][Math.floor(rand() * roomsOf[p].length)];
        live[2 * p].send(`<message to='${room}' type='groupchat'><body>sz ${i} ${now().toFixed(3)}</body></message>`);
      }
      const sendWallMs = now() - t0;
      const until = now() + drainMs;
      while (chatLatencies.length < total && now() < until) await sleep(100);
      const lat = chatLatencies;
      chatLatencies = null;
      return { sent: total, received: lat.length, latencies: lat, sendWallMs, joinFailed: j.failed, joinError: j.firstError, joins: joins.length, joinWallMs, occupancies: names.length * 2 };
    },
    async stats() {
      return { clients: clients.length, open: clients.filter((c) => !c.closed).length, pingsAnswered, rssKb: Math.round(process.memoryUsage().rss / 1024) };
    },
    async close() {
      for (const c of clients) c.close();
      clients.length = 0;
      return {};
    },
  };

  process.on('message', async ({ id, op, args }) => {
    try { process.send({ id, result: await ops[op](args) }); } catch (e) { process.send({ id, error: e.stack ?? String(e) }); }
  });
  process.on('disconnect', () => process.exit(0));
}

// =================================================================================================
// the main process

async function main() {
  const { waitPort, portFree, createBenchAccounts, writeDocsSection, perchNodeFlags } = await import('./lib.mjs');
  const { docsSection } = await import('./sizing-docs.mjs');
  const SHORT = has('--short');
  const num = (name, full, short) => Number(argValue(name) ?? (SHORT ? short : full));
  const CASES = (argValue('--cases') ?? 'sessions,sessions2,room,rooms').split(',');
  const S = {
    sessions: num('--sessions', 20_000, 500),
    occupants: num('--occupants', 16_000, 300),
    rooms: num('--rooms', 33_000, 1_000),
    rate: num('--rate', 24, 24),
    minutes: num('--minutes', 10, 1),
    idleWindowS: num('--idle-window', 120, 15),
    pingSeconds: num('--ping-seconds', 60, 10),
    chatSessions: num('--chat-sessions', 1_000, 100),
    idleUnloadS: num('--idle-unload', 60, 5),
  };
  /** Seconds to let the servers settle after a burst of work before memory is read. */
  const SETTLE_S = SHORT ? 2 : 10;
  const CHECK = has('--check');
  /** Rooms unloaded once (after the disco#info load) rather than also after their creation. */
  const ONE_UNLOAD = has('--one-unload');
  const PG_ADMIN_URL = process.env.PERCH_SIZING_PG ?? 'postgres://root@127.0.0.1:5432/postgres';
  const BASE_PORT = Number(process.env.PERCH_SIZING_PORT ?? 35222);
  const REDIS_PORT = Number(process.env.PERCH_SIZING_REDIS_PORT ?? 35379);
  const DB = `perch_sizing_${process.pid}`;
  const pgUrl = (db) => PG_ADMIN_URL.replace(/\/[^/]*$/, `/${db}`);
  const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-sizing-'));
  // a reader that went away (a test that timed out) must not stop the cleanup
  process.stdout.on('error', () => {});
  const log = (s) => process.stdout.write(`${s}\n`);
  const stamp = () => new Date().toISOString().slice(11, 19);
  const FD_RESERVE = 150;
  const WORKER_CONNS = 9_000;
  /** Connections made so far: the next one's place in the rotation over source addresses (see sourceOf). */
  let sourceNext = Number(argValue('--source-offset') ?? 0);
  const fdHard = Number(execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()) || 1024;
  const nodeCap = fdHard - FD_RESERVE;
  const notes = [];
  const cap = (what, n) => {
    if (n <= nodeCap) return n;
    notes.push(`${what}: ${n.toLocaleString('en')} asked, ${nodeCap.toLocaleString('en')} measured: a process here may hold ${fdHard.toLocaleString('en')} descriptors (\`ulimit -Hn\`, not raisable without privileges) and a node keeps ${FD_RESERVE} for its listeners, PostgreSQL pool, Redis and files.`);
    return nodeCap;
  };
  const N1 = cap('Sessions on one node', S.sessions);
  const N2 = cap('Sessions per node of two', S.sessions) * 2;
  const OCC = cap('Room occupants', S.occupants);
  const NUSERS = Math.max(CASES.includes('sessions') ? N1 : 0, CASES.includes('sessions2') ? N2 : 0, CASES.includes('room') ? OCC : 0, CASES.includes('rooms') ? S.chatSessions + 100 : 0, 10);

  let pg = null;
  const pgq = async (sql, params) => {
    pg ??= await (async () => { const { default: P } = await import('pg'); const c = new P.Client({ connectionString: PG_ADMIN_URL }); await c.connect(); return c; })();
    return (await pg.query(sql, params)).rows;
  };

  // ---- processes and their CPU -----------------------------------------------------------------
  const CLK = 100;
  const ticksOf = (pid) => {
    try { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); const p = f.slice(f.lastIndexOf(')') + 2).split(' '); return Number(p[11]) + Number(p[12]); } catch { return 0; }
  };
  const rssKb = (pid) => { try { return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]); } catch { return 0; } };
  const backendPids = async () => (await pgq('SELECT pid FROM pg_stat_activity WHERE datname = $1', [DB])).map((r) => r.pid);
  /** CPU of the servers, their PostgreSQL backends and Redis, and the load, as ticks; sample() twice and diff. */
  const cpuSample = async (servers, workers) => {
    const pids = await backendPids();
    return {
      at: now(),
      server: servers.reduce((a, s) => a + ticksOf(s.proc.pid), 0),
      db: new Map(pids.map((p) => [p, ticksOf(p)])),
      redis: redis.proc ? ticksOf(redis.proc.pid) : 0,
      load: workers.reduce((a, w) => a + ticksOf(w.pid), 0),
      pids,
    };
  };
  /** % of one core each over the interval (a backend that came and went between the samples is missed). */
  const cpuDiff = (a, b) => {
    const s = (b.at - a.at) / 1000;
    const pct = (x) => Math.round((100 * x) / CLK / s * 10) / 10;
    let db = 0;
    for (const [p, t] of b.db) db += t - (a.db.get(p) ?? 0);
    return { seconds: Math.round(s), server: pct(b.server - a.server), db: pct(db), redis: pct(b.redis - a.redis), load: pct(b.load - a.load) };
  };
  const machineBusy = () => { const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number); return { busy: f[0] + f[1] + f[2] + f[5] + f[6] + f[7], all: f.slice(0, 8).reduce((a, b) => a + b, 0) }; };

  const redis = {
    proc: null,
    async start() {
      if (!(await portFree(REDIS_PORT))) throw new Error(`port ${REDIS_PORT} is busy`);
      this.proc = spawn('redis-server', ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', WORK, '--loglevel', 'warning', '--maxclients', '1000'], { stdio: ['ignore', 'ignore', 'inherit'] });
      this.exited = new Promise((r) => this.proc.once('exit', r));
      await waitPort(REDIS_PORT, 10000);
    },
    async stop() { if (this.proc) { this.proc.kill('SIGTERM'); await this.exited; this.proc = null; } },
  };

  // a copy of dist/, so that a rebuild during the run cannot change the server
  const SNAP = path.join(WORK, 'perch');
  fs.mkdirSync(SNAP);
  fs.cpSync(path.resolve(argValue('--dist') ?? path.join(ROOT, 'dist')), path.join(SNAP, 'dist'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(SNAP, 'package.json'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(SNAP, 'node_modules'));
  const DIST = path.join(SNAP, 'dist');

  const started = new Set();
  const bindable = (port) => new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
  const node = (i) => ({
    i, port: BASE_PORT + i, metricsPort: BASE_PORT + 58 + i, proc: null,
    config: path.join(WORK, `node${i}.json`), dir: path.join(WORK, `node${i}`),
    writeConfig() {
      fs.mkdirSync(this.dir, { recursive: true });
      fs.writeFileSync(this.config, JSON.stringify({
        domain: DOMAIN, dataDir: this.dir, logLevel: 'warn', databaseUrl: pgUrl(DB), redisUrl: `redis://127.0.0.1:${REDIS_PORT}`, workers: 1,
        listen: { c2s: { host: '127.0.0.1', port: this.port }, c2sDirectTls: null, component: null, metrics: { host: '127.0.0.1', port: this.metricsPort }, upload: null, websocket: null, websocketPlain: null },
        tls: { requireStartTls: false },
        limits: { authFailuresPerIp: 1_000_000, authFailuresPerAccount: 1_000_000, bytesPerSecond: 64 * 1024 * 1024, authTimeout: 300 },
        // the server pings a session quiet for this long: "idle with a ping every minute"
        ping: { idleSeconds: S.pingSeconds, timeoutSeconds: 60 },
        // (the key only when it is not the default, so that --dist can take a build without it)
        muc: { messagesPerSecond: 1_000_000, messageBurst: 1_000_000, ...(S.idleUnloadS !== 60 ? { idleUnloadSeconds: S.idleUnloadS } : {}) },
      }, null, 2));
    },
    async start() {
      // Other jobs' outgoing connections may hold one of this range's ports (it is inside the ephemeral
      // range): take the first pair that can be bound, 10 apart.
      for (let k = 0; ; k++) {
        if (k === 40) throw new Error(`no bindable port pair from ${BASE_PORT + i}`);
        this.port = BASE_PORT + i + 10 * k;
        this.metricsPort = BASE_PORT + 58 + i + 10 * k;
        if ((await bindable(this.port)) && (await bindable(this.metricsPort))) break;
      }
      this.writeConfig();
      this.proc = spawn(process.execPath, [...perchNodeFlags(DIST), path.join(DIST, 'src/cli.js'), '--config', this.config, 'start'], { stdio: ['ignore', 'inherit', 'inherit'] });
      started.add(this);
      this.exited = new Promise((r) => this.proc.once('exit', r));
      await Promise.race([waitPort(this.port, 60000), this.exited.then((c) => { throw new Error(`perch exited with ${c}`); })]);
      await sleep(1000);
    },
    async metric(name) {
      const text = await (await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
    },
    async stop() {
      if (!this.proc) return;
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc?.kill('SIGKILL'), 20000);
      await this.exited;
      clearTimeout(t);
      this.proc = null;
    },
  });

  // ---- workers -----------------------------------------------------------------------------------
  const workers = [];
  const spawnWorkers = (n) => {
    for (let i = 0; i < n; i++) {
      const w = fork(fileURLToPath(import.meta.url), ['--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
      w.calls = new Map(); w.nextId = 0;
      w.on('message', ({ id, result, error }) => { const c = w.calls.get(id); w.calls.delete(id); if (error) c.reject(new Error(error)); else c.resolve(result); });
      w.exitedP = new Promise((r) => w.once('exit', r));
      w.call = (op, args = {}) => new Promise((resolve, reject) => { const id = w.nextId++; w.calls.set(id, { resolve, reject }); w.send({ id, op, args }); });
      workers.push(w);
    }
    return workers.slice(-n);
  };
  const stopWorkers = async () => {
    for (const w of workers) { try { await w.call('close'); } catch { /* gone */ } w.disconnect(); }
    await Promise.all(workers.map((w) => w.exitedP));
    workers.length = 0;
  };
  /** Users [from, from+n) logged in over workers of at most WORKER_CONNS connections each. */
  const loginAll = async (from, n, ports, concurrency = 400) => {
    const ws = spawnWorkers(Math.max(1, Math.ceil(n / WORKER_CONNS)));
    const per = Math.ceil(n / ws.length);
    const t0 = now();
    const source = sourceNext;
    sourceNext += n;
    const rs = await Promise.all(ws.map((w, k) => w.call('login', { from: from + k * per, to: Math.min(from + n, from + (k + 1) * per), host: '127.0.0.1', ports, source: source + k * per, concurrency: Math.ceil(concurrency / ws.length) })));
    const ms = rs.flatMap((r) => r.ms);
    const failed = rs.reduce((a, r) => a + r.failed, 0);
    if (failed) log(`    !! ${failed} logins failed: ${rs.find((r) => r.firstError)?.firstError}`);
    return { ws, wallMs: now() - t0, failed, ok: n - failed, ...pcts(ms) };
  };

  const pcts = (arr) => {
    const a = arr.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
    const at = (p) => (a.length ? a[Math.min(a.length - 1, Math.floor(p * a.length))] : NaN);
    return { n: a.length, p50: r1(at(0.5)), p99: r1(at(0.99)), max: r1(a[a.length - 1] ?? NaN) };
  };
  const r1 = (x) => Math.round(x * 10) / 10;
  const results = { sizes: { ...S, N1, N2, OCC }, notes, cases: {}, checks: [] };
  const check = (name, ok, detail) => { results.checks.push({ name, ok, detail }); log(`    ${ok ? 'ok' : 'FAILED'}: ${name}${detail ? ` (${detail})` : ''}`); };

  /** Waits until the gauge reaches want (or timeoutMs); returns ms waited, or NaN. */
  const waitMetric = async (nodes, name, pred, timeoutMs) => {
    const t0 = now();
    while (now() - t0 < timeoutMs) {
      const v = (await Promise.all(nodes.map((n) => n.metric(name)))).reduce((a, b) => a + b, 0);
      if (pred(v)) return now() - t0;
      await sleep(250);
    }
    return NaN;
  };

  // ---- the cases ---------------------------------------------------------------------------------
  async function sessionsCase(tag, nodes, n) {
    log(`---- ${stamp()} ${tag}: ${n} sessions on ${nodes.length} node(s)`);
    for (const nd of nodes) await nd.start();
    await sleep(3000);
    const rss0 = nodes.map((nd) => rssKb(nd.proc.pid));
    const c0 = await cpuSample(nodes, []);
    const lg = await loginAll(1, n, nodes.map((nd) => nd.port));
    const c1 = await cpuSample(nodes, lg.ws);
    log(`    logged in ${lg.ok}/${n} in ${(lg.wallMs / 1000).toFixed(1)} s (p50 ${lg.p50} ms, p99 ${lg.p99} ms)`);
    const sessions = (await Promise.all(nodes.map((nd) => nd.metric('perch_sessions')))).reduce((a, b) => a + b, 0);
    check(`${tag}: every session bound`, sessions === n && lg.failed === 0, `${sessions} of ${n}`);
    await sleep(SETTLE_S * 1000);
    const rss1 = nodes.map((nd) => rssKb(nd.proc.pid));
    const before = (await Promise.all(lg.ws.map((w) => w.call('stats')))).reduce((a, s) => a + s.pingsAnswered, 0);
    const i0 = await cpuSample(nodes, lg.ws), m0 = machineBusy();
    await sleep(S.idleWindowS * 1000);
    const i1 = await cpuSample(nodes, lg.ws), m1 = machineBusy();
    const st = await Promise.all(lg.ws.map((w) => w.call('stats')));
    const pings = st.reduce((a, s) => a + s.pingsAnswered, 0) - before;
    const rss2 = nodes.map((nd) => rssKb(nd.proc.pid));
    const stillBound = (await Promise.all(nodes.map((nd) => nd.metric('perch_sessions')))).reduce((a, b) => a + b, 0);
    check(`${tag}: sessions still bound after the idle window`, stillBound === sessions, `${stillBound}`);
    const r = {
      nodes: nodes.length, sessions: n, bound: sessions, login: { wall_s: r1(lg.wallMs / 1000), per_s: Math.round(lg.ok / (lg.wallMs / 1000)), p50: lg.p50, p99: lg.p99, cpu: cpuDiff(c0, c1) },
      rss_mb_before: rss0.map((x) => Math.round(x / 1024)), rss_mb_after: rss2.map((x) => Math.round(x / 1024)),
      kb_per_session: r1((rss1.reduce((a, b) => a + b, 0) - rss0.reduce((a, b) => a + b, 0)) / n),
      kb_per_session_after_idle: r1((rss2.reduce((a, b) => a + b, 0) - rss0.reduce((a, b) => a + b, 0)) / n),
      idle: { ...cpuDiff(i0, i1), pings, pings_per_s: r1(pings / S.idleWindowS), machine_pct: Math.round((200 * (m1.busy - m0.busy)) / Math.max(1, m1.all - m0.all)) },
      load_rss_mb: st.map((s) => Math.round(s.rssKb / 1024)),
    };
    log(`    RSS ${r.rss_mb_before.join('+')} → ${r.rss_mb_after.join('+')} MB: ${r.kb_per_session} kB/session; idle over ${S.idleWindowS} s: server ${r.idle.server}%, db ${r.idle.db}%, redis ${r.idle.redis}%, ${pings} pings answered`);
    await stopWorkers();
    for (const nd of nodes) await nd.stop();
    results.cases[tag] = r;
  }

  async function roomCase() {
    const tag = 'room';
    const room = `big@${MUC}`;
    log(`---- ${stamp()} room: ${OCC} occupants`);
    const nd = node(0);
    await nd.start();
    const lg = await loginAll(1, OCC, [nd.port]);
    log(`    logged in ${lg.ok}/${OCC} in ${(lg.wallMs / 1000).toFixed(1)} s`);
    const limit = 75;
    await lg.ws[0].call('create', { names: ['big'], concurrency: 1 });
    await sleep(2000);
    const rss0 = rssKb(nd.proc.pid);
    // joins: one at a time per worker first up to the limit's region, then all together (each worker 50 in flight)
    const c0 = await cpuSample([nd], lg.ws);
    const t0 = now();
    const js = await Promise.all(lg.ws.map((w) => w.call('join', { room, concurrency: 50 })));
    const joinWall = now() - t0;
    const c1 = await cpuSample([nd], lg.ws);
    const joinFailed = js.reduce((a, r) => a + r.failed, 0);
    const j = pcts(js.flatMap((r) => r.ms));
    log(`    joined ${j.n}/${OCC} in ${(joinWall / 1000).toFixed(1)} s (p50 ${j.p50} ms, p99 ${j.p99} ms)${joinFailed ? ` !! ${js.find((r) => r.firstError)?.firstError}` : ''}`);
    check('room: every occupant joined', joinFailed === 0 && j.n === OCC, `${j.n} of ${OCC}`);
    const rss1 = rssKb(nd.proc.pid);
    // the post: one occupant, all receive
    const p0 = await cpuSample([nd], lg.ws);
    const { at } = await lg.ws[0].call('post', { room, seq: 1 });
    let got = 0, times = [];
    const until = now() + 120000;
    while (now() < until) {
      const rs = await Promise.all(lg.ws.map((w) => w.call('received', { seq: 1 })));
      times = rs.flatMap((r) => r.times);
      got = times.length;
      if (got >= OCC) break;
      await sleep(50);
    }
    const p1 = await cpuSample([nd], lg.ws);
    const post = pcts(times.map((t) => t - at));
    log(`    post reached ${got}/${OCC}: all within ${post.max} ms (p50 ${post.p50} ms)`);
    check('room: every occupant got the post', got === OCC, `${got} of ${OCC}`);
    const l0 = await cpuSample([nd], lg.ws);
    const tl = now();
    const ls = await Promise.all(lg.ws.map((w) => w.call('leave', { room, concurrency: 50 })));
    const leaveWall = now() - tl;
    const l1 = await cpuSample([nd], lg.ws);
    const leaveFailed = ls.reduce((a, r) => a + r.failed, 0);
    const l = pcts(ls.flatMap((r) => r.ms));
    log(`    left ${l.n}/${OCC} in ${(leaveWall / 1000).toFixed(1)} s (p50 ${l.p50} ms, p99 ${l.p99} ms)`);
    check('room: every occupant left', leaveFailed === 0 && l.n === OCC, `${l.n} of ${OCC}`);
    results.cases[tag] = {
      occupants: OCC, limit,
      join: { wall_s: r1(joinWall / 1000), p50: j.p50, p99: j.p99, max: j.max, cpu: cpuDiff(c0, c1) },
      post: { all_ms: post.max, p50: post.p50, p99: post.p99, received: got, cpu: cpuDiff(p0, p1) },
      leave: { wall_s: r1(leaveWall / 1000), p50: l.p50, p99: l.p99, max: l.max, cpu: cpuDiff(l0, l1) },
      kb_per_occupant: r1((rss1 - rss0) / OCC),
    };
    await stopWorkers();
    await nd.stop();
  }

  async function roomsCase() {
    const tag = 'rooms';
    const N = S.rooms;
    log(`---- ${stamp()} rooms: ${N} persistent rooms`);
    const names = Array.from({ length: N }, (_, i) => `r${i}`);
    const nd = node(0);
    await nd.start();
    const owners = await loginAll(S.chatSessions + 1, 50, [nd.port]);
    const w = owners.ws[0];
    // creation
    const rssEmpty = rssKb(nd.proc.pid);
    const c0 = await cpuSample([nd], [w]);
    const cr = await w.call('create', { names, concurrency: 50 });
    const c1 = await cpuSample([nd], [w]);
    const created = pcts(cr.ms);
    log(`    created ${created.n}/${N} in ${(cr.wallMs / 1000).toFixed(1)} s (p50 ${created.p50} ms, p99 ${created.p99} ms)${cr.failed ? ` !! ${cr.firstError}` : ''}`);
    check('rooms: every room created', cr.failed === 0, `${created.n} of ${N}`);
    const loadedAfterCreate = await nd.metric('perch_muc_rooms_loaded');
    // idle unload of the created rooms (empty persistent rooms go after muc.idleUnloadSeconds without
    // activity); --one-unload skips this wait: the rooms are then unloaded once, below, and loaded again
    // from storage by the message phase's joins
    let unloadAfterCreate = NaN, rss0 = rssEmpty;
    if (!ONE_UNLOAD) {
      const u0 = now();
      unloadAfterCreate = await waitMetric([nd], 'perch_muc_rooms_loaded', (v) => v === 0, 240000);
      log(`    ${loadedAfterCreate} loaded after creation; all unloaded ${((now() - u0) / 1000).toFixed(1)} s after the last creation`);
      await sleep(SETTLE_S * 1000);
      rss0 = rssKb(nd.proc.pid);
    }
    // stored: counted once the saves are done (this case's rooms only: the room case's is in the same database)
    await sleep(1000);
    const stored = await (async () => { const { default: P } = await import('pg'); const c = new P.Client({ connectionString: pgUrl(DB) }); await c.connect(); try { return (await c.query("SELECT count(*)::int AS n FROM rooms WHERE name ~ '^r[0-9]+$'")).rows[0].n; } finally { await c.end(); } })();
    check('rooms: every room stored', stored === N, `${stored} of ${N}`);
    // load: disco#info to each room
    const d0 = await cpuSample([nd], [w]);
    const dl = await w.call('disco', { names, concurrency: 50 });
    const d1 = await cpuSample([nd], [w]);
    const loaded = await nd.metric('perch_muc_rooms_loaded');
    await sleep(3000);
    const rss1 = rssKb(nd.proc.pid);
    const disco = pcts(dl.ms);
    log(`    loaded ${loaded}/${N} by disco#info in ${(dl.wallMs / 1000).toFixed(1)} s (p50 ${disco.p50} ms, p99 ${disco.p99} ms); RSS ${Math.round(rss0 / 1024)} → ${Math.round(rss1 / 1024)} MB`);
    check('rooms: every room loaded by disco#info', loaded === N && dl.failed === 0, `${loaded} of ${N}${dl.failed ? `, ${dl.firstError}` : ''}`);
    // idle CPU with every room loaded (lease renewals), then the idle unload
    const i0 = await cpuSample([nd], [w]);
    const tu = now();
    const unloadMs = await waitMetric([nd], 'perch_muc_rooms_loaded', (v) => v === 0, 240000);
    const i1 = await cpuSample([nd], [w]);
    await sleep(3000);
    const rss2 = rssKb(nd.proc.pid);
    log(`    unloaded all ${(unloadMs / 1000).toFixed(1)} s after loading (idle unload after ${S.idleUnloadS} s); RSS ${Math.round(rss2 / 1024)} MB`);
    check('rooms: every room unloaded when idle', Number.isFinite(unloadMs), `${await nd.metric('perch_muc_rooms_loaded')} still loaded`);
    await stopWorkers();
    // messages across the rooms
    const chatters = await loginAll(1, S.chatSessions, [nd.port]);
    const seconds = S.minutes * 60;
    log(`    ${S.chatSessions} sessions in pairs join the ${N} rooms, then ${S.rate} messages/s for ${seconds} s`);
    const m0 = await cpuSample([nd], chatters.ws);
    const ch = await chatters.ws[0].call('chat', { names, rate: S.rate, seconds, concurrency: 100, drainMs: 15000 });
    const m1 = await cpuSample([nd], chatters.ws);
    const lat = pcts(ch.latencies);
    log(`    joined ${ch.joins} sessions × their rooms (${ch.occupancies} occupancies) in ${(ch.joinWallMs / 1000).toFixed(1)} s${ch.joinFailed ? ` !! ${ch.joinFailed} failed: ${ch.joinError}` : ''}; ${ch.received}/${ch.sent} messages received, p50 ${lat.p50} ms, p99 ${lat.p99} ms, max ${lat.max} ms`);
    check('rooms: every message received', ch.received === ch.sent && ch.joinFailed === 0, `${ch.received} of ${ch.sent}`);
    results.cases[tag] = {
      rooms: N, stored,
      create: { wall_s: r1(cr.wallMs / 1000), per_s: Math.round(N / (cr.wallMs / 1000)), p50: created.p50, p99: created.p99, cpu: cpuDiff(c0, c1) },
      loaded_after_create: loadedAfterCreate, unload_after_create_s: r1(unloadAfterCreate / 1000),
      load: { wall_s: r1(dl.wallMs / 1000), per_s: Math.round(N / (dl.wallMs / 1000)), p50: disco.p50, p99: disco.p99, cpu: cpuDiff(d0, d1) },
      loaded, kb_per_loaded_room: r1((rss1 - rss0) / Math.max(1, loaded)), rss_mb: [rss0, rss1, rss2].map((x) => Math.round(x / 1024)),
      unload_s: r1(unloadMs / 1000), idle_loaded: cpuDiff(i0, i1),
      chat: { sessions: S.chatSessions, occupancies: ch.occupancies, join_s: r1(ch.joinWallMs / 1000), rate: S.rate, seconds, sent: ch.sent, received: ch.received, p50: lat.p50, p99: lat.p99, max: lat.max, cpu: cpuDiff(m0, m1) },
    };
    await stopWorkers();
    await nd.stop();
  }

  // ---- the run -----------------------------------------------------------------------------------
  let cleaned = null;
  const cleanup = () => (cleaned ??= (async () => {
    await stopWorkers().catch(() => {});
    for (const nd of started) await nd.stop().catch(() => {});
    await redis.stop().catch(() => {});
    await pgq(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`).catch((e) => log(`drop ${DB}: ${e.message}`));
    await pg?.end();
    fs.rmSync(WORK, { recursive: true, force: true });
  })());
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => { log(`${sig}: cleaning up`); void cleanup().finally(() => process.exit(130)); });
  if (argValue('--report-only')) {
    // the section again from a run's --json file (the figures are not measured again)
    writeDocsSection(ROOT, docsSection(JSON.parse(fs.readFileSync(argValue('--report-only'), 'utf8')), SHORT), 'sizing', 'bench/sizing.mjs', log);
    fs.rmSync(WORK, { recursive: true, force: true });
    return;
  }
  const t0 = Date.now();
  let exitCode = 0;
  try {
    await pgq(`CREATE DATABASE ${DB}`);
    await redis.start();
    // accounts (and the schema) before any server starts
    const { openDataStores } = await import(path.join(DIST, 'storage/open.js'));
    const { addUser } = await import(path.join(DIST, 'src/accounts.js'));
    const stores = await openDataStores({ databaseUrl: pgUrl(DB), dataDir: path.join(WORK, 'node0') });
    const ta = Date.now();
    await createBenchAccounts(addUser, stores, DOMAIN, NUSERS + 60, 4096);
    await stores.db.close();
    log(`${stamp()} ${NUSERS + 61} accounts in ${((Date.now() - ta) / 1000).toFixed(1)} s; fd limit ${fdHard}`);
    for (const n of notes) log(`note: ${n}`);
    // A case that throws is reported and the next one runs (its servers and load stopped first).
    const run = async (tag, fn) => {
      if (!CASES.includes(tag)) return;
      try { await fn(); } catch (e) {
        log(`!! ${tag}: ${e.stack ?? e}`);
        check(`${tag}: ran to the end`, false, String(e.message ?? e).split('\n')[0]);
        await stopWorkers().catch(() => {});
        for (const nd of started) await nd.stop().catch(() => {});
      }
      if (argValue('--json')) fs.writeFileSync(argValue('--json'), JSON.stringify(results, null, 2));
    };
    await run('sessions', () => sessionsCase('sessions', [node(0)], N1));
    await run('sessions2', () => sessionsCase('sessions2', [node(0), node(1)], N2));
    await run('room', roomCase);
    await run('rooms', roomsCase);
  } catch (e) {
    log(`!! ${e.stack ?? e}`);
    exitCode = 2;
  } finally {
    await cleanup();
  }
  results.minutes = r1((Date.now() - t0) / 60000);
  results.commit = (() => { try { return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim(); } catch { return '?'; } })();
  if (argValue('--json')) fs.writeFileSync(argValue('--json'), JSON.stringify(results, null, 2));
  log(JSON.stringify(results));
  if (!has('--no-docs') && Object.keys(results.cases).length > 0) writeDocsSection(ROOT, docsSection(results, SHORT), 'sizing', 'bench/sizing.mjs', log);
  if (CHECK && results.checks.some((c) => !c.ok)) exitCode ||= 1;
  process.exit(exitCode);
}
