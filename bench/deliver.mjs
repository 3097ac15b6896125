#!/usr/bin/env node
// Local delivery micro-benchmark, in process: one serialised room message handed to N local sessions through
// router.deliverTo, as a room's fan-out does, with the modules every server loads (blocking, CSI, carbons…).
// No sockets, load generator or database on the path, so the figure is the CPU cost of the delivery step alone
// and far less noisy than bench/muc.mjs on a shared machine. Compares Perch builds like bench/muc.mjs:
//
//   npm run build && node bench/deliver.mjs --compare ../wt/baseline
//
//   --compare DIR[:LABEL]      DIR (a checkout with dist/ built) as "before", this checkout as "after"
//   --perch-dist DIR[:LABEL]   each build named, in order (repeatable); without either, this checkout alone
//   --sessions N (100)         local recipients of each message;  --messages M (2000) per measurement
//   --rounds R (7)             measurements per build, each in a fresh process, the builds' order alternating
//   --blocking                 every recipient has a one-entry block list (the filter's slower path)
//
// Prints, per build, the median and range of CPU µs per delivery (user + system of the process over the timed
// loop, which covers what the sessions do with the stanza: write it, or serialise the element and write that).
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
const ROUNDS = opt('--rounds', 7);
const BLOCKING = argv.includes('--blocking');

/** One measurement of the build at root, run in this process (the --child mode). */
async function measure(root) {
  const dist = (f) => pathToFileURL(path.join(root, 'dist', f)).href;
  const { defaultConfig } = await import(dist('src/config.js'));
  const { ServerCore } = await import(dist('src/server.js'));
  const { addUser } = await import(dist('src/accounts.js'));
  const { parseJid } = await import(dist('protocol/jid.js'));
  const config = defaultConfig();
  config.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-deliver-bench-'));
  config.logLevel = 'error';
  config.nodeId = 'bench';
  config.listen = { c2s: null, c2sDirectTls: null, component: null, metrics: null, upload: null };
  const server = new ServerCore(config);
  await server.start();
  let bytes = 0;
  const sessions = [];
  for (let i = 0; i < SESSIONS; i++) {
    const username = `user${i}`;
    const full = `${username}@${config.domain}/bench`;
    if (BLOCKING) {
      await addUser(server.stores, config.domain, username, 'x', 4096);
      await server.stores.userData.put(username, 'blocklist', 'spammer@elsewhere.example', '');
    }
    const record = { jid: full, node: server.sessions.nodeId, priority: 0, available: true, presence: null, interested: true, carbons: false, since: Date.now() };
    // What a client session does with a stanza, minus the socket: an element is serialised, a string written.
    const session = {
      jid: parseJid(full), username, full, bare: `${username}@${config.domain}`,
      ip: '127.0.0.1', secure: true, record, data: new Map(), closed: false,
      async updateRecord(change) { Object.assign(record, change); },
      send(el) { this.sendRaw(el.toString(), el.name); },
      sendRaw(xml) { bytes += xml.length; },
      close() {}, end() {}, replaced() {},
    };
    await server.bindSession(session);
    sessions.push(session);
  }
  const room = `room@conference.${config.domain}`;
  const message = (n) => `<message from='${room}/nick${n % 20}' type='groupchat' id='m${n}'><body>message number ${n}: a line of team chat of ordinary length, with a &amp; and a &lt;tag&gt;</body>`
    + `<stanza-id xmlns='urn:xmpp:sid:0' id='${n}' by='${room}'/><occupant-id xmlns='urn:xmpp:occupant-id:0' id='occ${n % 20}'/></message>`;
  // The room splices each recipient's 'to' into the one serialised string (room.ts withTo).
  const fanOut = (n) => {
    const xml = message(n);
    for (const s of sessions) server.router.deliverTo(s.record, `<message to='${s.full}'${xml.slice(8)}`, 'message');
  };
  for (let n = 0; n < Math.min(500, MESSAGES); n++) fanOut(n); // warm-up
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let n = 0; n < MESSAGES; n++) fanOut(n);
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const deliveries = MESSAGES * SESSIONS;
  for (const s of sessions) await server.unbindSession(s, 'bench over', []);
  await server.stop();
  fs.rmSync(config.dataDir, { recursive: true, force: true });
  return { cpu_us_per_delivery: (cpu.user + cpu.system) / deliveries, wall_us_per_delivery: (wall * 1000) / deliveries, deliveries, bytes };
}

if (argv[0] === '--child') {
  process.stdout.write(`${JSON.stringify(await measure(argv[1]))}\n`);
  process.exit(0);
}

// Builds as bench/muc.mjs names them.
const specs = [];
argv.forEach((a, i) => {
  if (a === '--compare') specs.push([argv[i + 1], 'before'], [ROOT, 'after']);
  else if (a === '--perch-dist') specs.push([argv[i + 1], null]);
});
if (!specs.length) specs.push([ROOT, 'this']);
const builds = specs.map(([spec, dflt]) => {
  const colon = spec.lastIndexOf(':');
  const hasLabel = colon > 0 && !spec.slice(colon + 1).includes('/');
  let root = path.resolve(hasLabel ? spec.slice(0, colon) : spec);
  if (path.basename(root) === 'dist') root = path.dirname(root);
  if (!fs.existsSync(path.join(root, 'dist/src/server.js'))) throw new Error(`${root}: no dist/ (npm ci && npm run build there)`);
  return { label: hasLabel ? spec.slice(colon + 1) : dflt ?? path.basename(root), root, runs: [] };
});

const median = (xs) => { const v = [...xs].sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2; };
const self = fileURLToPath(import.meta.url);
console.log(`local delivery: ${SESSIONS} sessions × ${MESSAGES} messages per measurement, ${ROUNDS} rounds${BLOCKING ? ', every recipient with a block list' : ''}; ${os.cpus().length} × ${os.cpus()[0]?.model}, load ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}`);
for (let r = 0; r < ROUNDS; r++) {
  for (const b of r % 2 ? [...builds].reverse() : builds) {
    const child = spawnSync(process.execPath, [self, '--child', b.root, ...argv.filter((a) => a !== '--compare' && a !== '--perch-dist')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.status !== 0) throw new Error(`${b.label}: measurement failed (exit ${child.status})`);
    const res = JSON.parse(child.stdout.trim().split('\n').pop());
    b.runs.push(res);
    console.log(`  round ${r + 1} ${b.label}: ${res.cpu_us_per_delivery.toFixed(2)} µs CPU, ${res.wall_us_per_delivery.toFixed(2)} µs wall per delivery`);
  }
}
const first = builds[0], last = builds.at(-1);
const cell = (b, k) => { const v = b.runs.map((x) => x[k]); return `${median(v).toFixed(2)} (${Math.min(...v).toFixed(2)}–${Math.max(...v).toFixed(2)})`; };
console.log('\n| build | CPU µs per delivery, median (range) | wall µs per delivery | deliveries/s of one core |');
console.log('|---|---|---|---|');
for (const b of builds) console.log(`| ${b.label} | ${cell(b, 'cpu_us_per_delivery')} | ${cell(b, 'wall_us_per_delivery')} | ${Math.round(1e6 / median(b.runs.map((x) => x.cpu_us_per_delivery))).toLocaleString('en-US')} |`);
if (builds.length > 1) {
  const m = (b) => median(b.runs.map((x) => x.cpu_us_per_delivery));
  console.log(`\n${last.label} ÷ ${first.label}: ${(m(last) / m(first)).toFixed(2)}× the CPU per delivery`);
}
