#!/usr/bin/env node
// A room's post path, in process: one room with N local sessions, M groupchat messages sent through the
// router in bursts, each burst waited for until every recipient has it (archive commit and fan-out included,
// on embedded PGlite in the same process). No sockets or load generator: the CPU per message is the room's
// own path (hooks, archive write with its compliance rows, fan-out), far less noisy than bench/muc.mjs on a
// shared machine. Compares builds like bench/deliver.mjs:
//
//   npm run build && node bench/room-post.mjs --perch-dist DIR:main --perch-dist .:off --perch-dist .:on --compliance-on on
//
//   --perch-dist DIR[:LABEL]   each build named, in order (repeatable); without it, this checkout alone
//   --compliance-on LABEL      the build with this label runs with compliance capture enabled (repeatable)
//   --sessions N (100)         occupants (each a local session);  --messages M (2000) per measurement
//   --burst B (20)             messages sent before waiting for their delivery;  --rounds R (5)
//
// Prints, per build, the median and range of CPU µs per message (user + system of the process over the timed
// loop) and of wall µs per message.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i === -1 ? dflt : Number(argv[i + 1]); };
const SESSIONS = opt('--sessions', 100);
const MESSAGES = opt('--messages', 2000);
const BURST = opt('--burst', 20);
const ROUNDS = opt('--rounds', 5);

/** One measurement of the build at root, in this process (the --child mode). */
async function measure(root, compliance) {
  const dist = (f) => pathToFileURL(path.join(root, 'dist', f)).href;
  const { defaultConfig } = await import(dist('src/config.js'));
  const { ServerCore } = await import(dist('src/server.js'));
  const { parseJid } = await import(dist('protocol/jid.js'));
  const { Element } = await import(dist('protocol/xml.js'));
  const config = defaultConfig();
  config.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-room-post-bench-'));
  config.logLevel = 'error';
  config.nodeId = 'bench';
  config.listen = { c2s: null, c2sDirectTls: null, component: null, metrics: null };
  config.muc.services = [{ domain: `conference.${config.domain}`, name: 'Chatrooms' }];
  config.muc.messagesPerSecond = 1_000_000;
  config.muc.messageBurst = 1_000_000;
  const server = new ServerCore(config);
  await server.start();
  if (compliance) {
    const { changeComplianceConfig } = await import(dist('src/compliance/state.js'));
    await changeComplianceConfig(server, { ...(await server.stores.compliance.getConfig()), enabled: true });
  }
  const room = `bench@conference.${config.domain}`;
  let waiting = null;
  const sessions = [];
  for (let i = 0; i < SESSIONS; i++) {
    const username = `user${i}`;
    const full = `${username}@${config.domain}/bench`;
    const record = { jid: full, node: server.sessions.nodeId, priority: 0, available: true, presence: null, interested: true, carbons: false, since: Date.now() };
    const session = {
      jid: parseJid(full), username, full, bare: `${username}@${config.domain}`, ip: '127.0.0.1', secure: true, record, data: new Map(), closed: false,
      got: 0, joined: false,
      async updateRecord(change) { Object.assign(record, change); },
      send(el) { this.sendRaw(el.toString(), el.name); },
      sendRaw(xml, name) {
        if (name === 'message' || xml.startsWith('<message')) {
          this.got++;
          if (waiting && this === sessions.at(-1) && this.got >= waiting.until) { const w = waiting; waiting = null; w.resolve(); }
        } else if (xml.includes("code='110'") || xml.includes('code="110"')) this.joined = true;
      },
      close() {}, end() {}, replaced() {},
    };
    await server.bindSession(session);
    sessions.push(session);
  }
  for (const [i, s] of sessions.entries()) {
    const p = new Element('presence', { from: s.full, to: `${room}/nick${i}` });
    p.c('x', { xmlns: 'http://jabber.org/protocol/muc' });
    server.router.route(p);
    // The first join creates the room (locked until configured, §10.1): accept the defaults (an instant room).
    if (i === 0) {
      await new Promise((r) => setTimeout(r, 200));
      const iq = new Element('iq', { from: s.full, to: room, type: 'set', id: 'create' });
      iq.c('query', { xmlns: 'http://jabber.org/protocol/muc#owner' }).c('x', { xmlns: 'jabber:x:data', type: 'submit' });
      server.router.route(iq);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const t = Date.now();
  while (!sessions.every((s) => s.joined)) {
    if (Date.now() - t > 30_000) throw new Error('the occupants did not all join');
    await new Promise((r) => setTimeout(r, 20));
  }
  const last = sessions.at(-1);
  const send = async (from, to) => {
    const until = last.got + (to - from);
    const done = new Promise((resolve) => { waiting = { until, resolve }; });
    for (let n = from; n < to; n++) {
      const m = new Element('message', { from: sessions[n % (SESSIONS - 1)].full, to: room, type: 'groupchat', id: `m${n}` });
      m.c('body').t(`message number ${n}: a line of team chat of ordinary length, with a & and a <tag>`);
      server.router.route(m);
    }
    await done;
  };
  for (let n = 0; n < Math.min(400, MESSAGES); n += BURST) await send(n, n + BURST); // warm-up
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let n = 0; n < MESSAGES; n += BURST) await send(n, Math.min(n + BURST, MESSAGES));
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const recorded = await server.stores.compliance.count();
  await server.stop();
  fs.rmSync(config.dataDir, { recursive: true, force: true });
  return { cpu_us_per_message: (cpu.user + cpu.system) / MESSAGES, wall_us_per_message: (wall * 1000) / MESSAGES, recorded };
}

if (argv[0] === '--child') {
  process.stdout.write(`${JSON.stringify(await measure(argv[1], argv[2] === 'on'))}\n`);
  process.exit(0);
}

const specs = [];
const compliant = new Set();
argv.forEach((a, i) => {
  if (a === '--perch-dist') specs.push(argv[i + 1]);
  else if (a === '--compliance-on') compliant.add(argv[i + 1]);
});
if (!specs.length) specs.push(ROOT);
const builds = specs.map((spec) => {
  const colon = spec.lastIndexOf(':');
  const hasLabel = colon > 0 && !spec.slice(colon + 1).includes('/');
  let root = path.resolve(hasLabel ? spec.slice(0, colon) : spec);
  if (path.basename(root) === 'dist') root = path.dirname(root);
  if (!fs.existsSync(path.join(root, 'dist/src/server.js'))) throw new Error(`${root}: no dist/ (npm ci && npm run build there)`);
  const label = hasLabel ? spec.slice(colon + 1) : path.basename(root);
  return { label, root, compliance: compliant.has(label), runs: [] };
});

const median = (xs) => { const v = [...xs].sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2; };
const self = fileURLToPath(import.meta.url);
const passOn = argv.filter((a, i) => !['--perch-dist', '--compliance-on'].includes(a) && !['--perch-dist', '--compliance-on'].includes(argv[i - 1]));
console.log(`room post path: ${SESSIONS} occupants, ${MESSAGES} messages in bursts of ${BURST} per measurement, ${ROUNDS} rounds; ${os.cpus().length} × ${os.cpus()[0]?.model}, load ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}`);
for (let r = 0; r < ROUNDS; r++) {
  for (const b of r % 2 ? [...builds].reverse() : builds) {
    const child = spawnSync(process.execPath, [self, '--child', b.root, b.compliance ? 'on' : 'off', ...passOn], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.status !== 0) throw new Error(`${b.label}: measurement failed (exit ${child.status})`);
    const res = JSON.parse(child.stdout.trim().split('\n').pop());
    b.runs.push(res);
    console.log(`  round ${r + 1} ${b.label}: ${res.cpu_us_per_message.toFixed(0)} µs CPU, ${res.wall_us_per_message.toFixed(0)} µs wall per message; ${res.recorded} compliance rows`);
  }
}
const cell = (b, k) => { const v = b.runs.map((x) => x[k]); return `${median(v).toFixed(0)} (${Math.min(...v).toFixed(0)}–${Math.max(...v).toFixed(0)})`; };
console.log('\n| build | compliance | CPU µs per message, median (range) | wall µs per message | compliance rows |');
console.log('|---|---|---|---|---|');
for (const b of builds) console.log(`| ${b.label} | ${b.compliance ? 'on' : 'off'} | ${cell(b, 'cpu_us_per_message')} | ${cell(b, 'wall_us_per_message')} | ${b.runs.at(-1).recorded} |`);
const m = (b) => median(b.runs.map((x) => x.cpu_us_per_message));
for (let i = 1; i < builds.length; i++) console.log(`${builds[i].label} ÷ ${builds[i - 1].label}: ${(m(builds[i]) / m(builds[i - 1])).toFixed(2)}× the CPU per message`);
