#!/usr/bin/env node
// A client's send path with stream management (XEP-0198), in process: one client session over a transport
// that only counts bytes sends M chat messages to another local account, each through the session's checks,
// the client-stanza hooks, the router and the archive (both copies, group-committed on embedded PGlite), and
// asks <r/> once every archive write has committed; the measurement ends once the answer covers every message. What it times is the
// cost of a client's stanza from the socket to "handled" (XEP-0198 h), the hot path for senders.
// Compares builds like bench/deliver.mjs:
//
//   npm run build && node bench/sm-send.mjs --perch-dist DIR:before --perch-dist .:after
//
//   --perch-dist DIR[:LABEL]   each build named, in order (repeatable); without it, this checkout alone
//   --messages M (4000)        per measurement;  --rounds R (7), each in a fresh process, the builds' order alternating
//
// Prints, per build, the median and range of CPU µs per message (user + system of the process over the
// timed loop, archive commits included) and of wall µs per message.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i === -1 ? dflt : Number(argv[i + 1]); };
const MESSAGES = opt('--messages', 4000);
const ROUNDS = opt('--rounds', 7);

async function measure(root) {
  const dist = (f) => pathToFileURL(path.join(root, 'dist', f)).href;
  const { defaultConfig } = await import(dist('src/config.js'));
  const { ServerCore } = await import(dist('src/server.js'));
  const { ClientSession } = await import(dist('src/c2s.js'));
  const { addUser } = await import(dist('src/accounts.js'));
  const { parseJid } = await import(dist('protocol/jid.js'));
  const { parseStanzaString } = await import(dist('protocol/xml-stream.js'));
  const { archiveWriter } = await import(dist('src/archive-writer.js'));
  const config = defaultConfig();
  config.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-sm-send-bench-'));
  config.logLevel = 'error';
  config.nodeId = 'bench';
  config.listen = { c2s: null, c2sDirectTls: null, component: null, metrics: null, upload: null };
  const server = new ServerCore(config);
  await server.start();
  for (const u of ['sender', 'receiver']) await addUser(server.stores, config.domain, u, 'x', 4096);
  // A transport that keeps nothing but the last <a/> it was asked to write.
  let lastAck = -1;
  let onAck = () => {};
  const transport = {
    remoteAddress: '127.0.0.1', secure: true, lastActivity: Date.now(), isClosing: false,
    setHandler() {}, openStream() {}, sendFeatures() {}, restartStream() {}, closeStream() {}, destroy() {}, streamError() {},
    write(xml) {
      if (xml.startsWith('<a ')) { lastAck = Number(/h='(\d+)'/.exec(xml)[1]); onAck(); }
    },
    send(el) { this.write(el.toString()); },
  };
  const sender = new ClientSession(server, transport, parseJid(`sender@${config.domain}/bench`), 'sender');
  await server.bindSession(sender);
  await sender.updateRecord({ available: true });
  const full = `receiver@${config.domain}/bench`;
  const record = { jid: full, node: server.sessions.nodeId, priority: 0, available: true, presence: null, interested: true, carbons: false, since: Date.now() };
  const receiver = {
    jid: parseJid(full), username: 'receiver', full, bare: `receiver@${config.domain}`, ip: '127.0.0.1', secure: true, record, data: new Map(), closed: false,
    async updateRecord(change) { Object.assign(record, change); },
    send(el) { this.sendRaw(el.toString(), el.name); }, sendRaw() {}, close() {}, end() {}, replaced() {},
  };
  await server.bindSession(receiver);
  const sm = (name) => parseStanzaString(`<${name} xmlns='urn:xmpp:sm:3'/>`, 'urn:xmpp:sm:3');
  sender.fromClient(sm('enable'));
  const make = (n) => parseStanzaString(`<message to='receiver@${config.domain}' type='chat' id='m${n}'><body>message number ${n}: a line of ordinary chat</body><origin-id xmlns='urn:xmpp:sid:0' id='o${n}'/></message>`, 'jabber:client');
  const run = async (from, count) => {
    const batch = Array.from({ length: count }, (_, i) => make(from + i));
    for (const el of batch) sender.fromClient(el);
    // Both builds do the same work in the timed span: every archive write committed (a build that
    // acknowledged on arrival would otherwise stop the clock before its writes), then one <r/>, asked
    // again only if its answer does not cover everything yet.
    await archiveWriter(server).flushed();
    while (lastAck < from + count) {
      await new Promise((resolve) => { onAck = resolve; sender.fromClient(sm('r')); });
      if (lastAck < from + count) await new Promise((r) => setTimeout(r, 1));
    }
  };
  await run(0, 500); // warm-up
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await run(500, MESSAGES);
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await server.stop();
  fs.rmSync(config.dataDir, { recursive: true, force: true });
  return { cpu_us: (cpu.user + cpu.system) / MESSAGES, wall_us: (wall * 1000) / MESSAGES };
}

if (argv[0] === '--child') {
  process.stdout.write(`${JSON.stringify(await measure(argv[1]))}\n`);
  process.exit(0);
}

const specs = [];
argv.forEach((a, i) => { if (a === '--perch-dist') specs.push(argv[i + 1]); });
if (!specs.length) specs.push(`${ROOT}:this`);
const builds = specs.map((spec) => {
  const colon = spec.lastIndexOf(':');
  const hasLabel = colon > 0 && !spec.slice(colon + 1).includes('/');
  let root = path.resolve(hasLabel ? spec.slice(0, colon) : spec);
  if (path.basename(root) === 'dist') root = path.dirname(root);
  if (!fs.existsSync(path.join(root, 'dist/src/server.js'))) throw new Error(`${root}: no dist/ (npm ci && npm run build there)`);
  return { label: hasLabel ? spec.slice(colon + 1) : path.basename(root), root, runs: [] };
});
const median = (xs) => { const v = [...xs].sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2; };
const self = fileURLToPath(import.meta.url);
console.log(`client send path with stream management: ${MESSAGES} chat messages per measurement, ${ROUNDS} rounds; ${os.cpus().length} × ${os.cpus()[0]?.model}, load ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}`);
for (let r = 0; r < ROUNDS; r++) {
  for (const b of r % 2 ? [...builds].reverse() : builds) {
    const child = spawnSync(process.execPath, [self, '--child', b.root, ...argv.filter((a) => a !== '--perch-dist')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.status !== 0) throw new Error(`${b.label}: measurement failed (exit ${child.status})`);
    const res = JSON.parse(child.stdout.trim().split('\n').pop());
    b.runs.push(res);
    console.log(`  round ${r + 1} ${b.label}: ${res.cpu_us.toFixed(1)} µs CPU, ${res.wall_us.toFixed(1)} µs wall per message`);
  }
}
const cell = (b, k) => { const v = b.runs.map((x) => x[k]); return `${median(v).toFixed(1)} (${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)})`; };
console.log('\n| build | CPU µs per message, median (range) | wall µs per message |');
console.log('|---|---|---|');
for (const b of builds) console.log(`| ${b.label} | ${cell(b, 'cpu_us')} | ${cell(b, 'wall_us')} |`);
if (builds.length > 1) {
  const m = (b) => median(b.runs.map((x) => x.cpu_us));
  console.log(`\n${builds.at(-1).label} ÷ ${builds[0].label}: ${(m(builds.at(-1)) / m(builds[0])).toFixed(2)}× the CPU per message`);
}
