// Small helpers shared by the benchmark runners.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** Resolves once something listens on 127.0.0.1:port, rejects after timeoutMs. */
/**
 * The Node flags a build's perch executable runs with (its dist/src/cli.js #! line, `env -S node FLAGS`;
 * none for a build from before it had any): the benchmarks start servers as an installed perch starts.
 */
export function perchNodeFlags(dist) {
  const first = fs.readFileSync(path.join(dist, 'src', 'cli.js'), 'utf8').split('\n', 1)[0];
  const m = /^#!\/usr\/bin\/env -S node (.*)$/.exec(first);
  // PERCH_BENCH_SERVER_NODE_FLAGS adds flags to the server alone (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"),
  // which NODE_OPTIONS cannot: it would reach the load generator too, and refuses --cpu-prof.
  const extra = (process.env.PERCH_BENCH_SERVER_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  return [...(m ? m[1].split(' ').filter(Boolean) : []), ...extra];
}

/**
 * Node flags for one build's server in a before/after runner: --before-node-flags / --after-node-flags
 * "FLAGS" (space-separated), so a V8 or Node setting can be compared on the same build (--before .).
 */
export function nodeFlags(argv, build) {
  const i = argv.indexOf(`--${build}-node-flags`);
  return i === -1 ? [] : argv[i + 1].split(' ').filter(Boolean);
}

export function waitPort(port, timeoutMs) {
  const until = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => { s.destroy(); resolve(); });
      s.once('error', () => { s.destroy(); if (Date.now() > until) reject(new Error(`port ${port} not open`)); else setTimeout(attempt, 100); });
    };
    attempt();
  });
}

/**
 * A copy of a build's dist/ in dir, with its package.json and a link to node_modules, so that a rebuild
 * during a run cannot change the server under test; returns the copy's dist/.
 */
export function snapshotDist(buildRoot, dir, nodeModules = path.join(buildRoot, 'node_modules')) {
  fs.mkdirSync(dir, { recursive: true });
  fs.cpSync(path.join(buildRoot, 'dist'), path.join(dir, 'dist'), { recursive: true });
  fs.copyFileSync(path.join(buildRoot, 'package.json'), path.join(dir, 'package.json'));
  fs.symlinkSync(nodeModules, path.join(dir, 'node_modules'));
  return path.join(dir, 'dist');
}

/** True when nothing listens on 127.0.0.1:port. */
export function portFree(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(false); });
    s.once('error', () => resolve(true));
  });
}

/** Accounts user0..userN with password bench-<n> (the load generator's scheme), 8 created at a time. */
export async function createBenchAccounts(addUser, stores, domain, n, iterations) {
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next <= n) {
      const i = next++;
      const r = await addUser(stores, domain, `user${i}`, `bench-${i}`, iterations);
      if (r !== 'ok') throw new Error(`addUser user${i}: ${r}`);
    }
  }));
}

/** mulberry32: a small deterministic PRNG, the same sequence on every run. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CHAT_WORDS = 'the a meeting deploy build review lunch ok thanks tomorrow release ticket bug fix merge please look at this one again later'.split(' ');

/**
 * Message n of one-to-one chat between 1,000 users, as the server archives it (src/modules/mam.ts):
 * the recipient's copy, then the sender's, sharing the stanza, each with its own body string (equal,
 * not the same object) and stamp object. Bodies of 4-15 words.
 */
export function chatCopies(n, domain, stamp) {
  const from = `user${n % 1000}@${domain}`, to = `user${(n * 7 + 1) % 1000}@${domain}`;
  const text = Array.from({ length: 4 + (n % 12) }, (_, k) => CHAT_WORDS[(n * 31 + k * 17) % CHAT_WORDS.length]).join(' ');
  const stanza = `<message xmlns="jabber:client" type="chat" id="m${n}" to="${to}" from="${from}/load"><body>${text}</body><request xmlns="urn:xmpp:receipts"/><origin-id xmlns="urn:xmpp:sid:0" id="o${n}"/></message>`;
  return [
    { archive: to, stanzaId: `r${n.toString(36)}x`, stamp, fromJid: `${from}/load`, realJid: from, body: `${text}`.slice(0), stanza },
    { archive: from, stanzaId: `s${n.toString(36)}x`, stamp: new Date(stamp.getTime()), fromJid: to, realJid: to, body: [text].join(''), stanza },
  ];
}

/**
 * Replaces the section between <!-- KEY:begin --> and <!-- KEY:end --> of docs/benchmarks.md (adding
 * it before <!-- notes --> the first time); hand-written notes between <!-- KEY:notes:begin/end -->
 * survive the rewrite. tool names the script in the notes' placeholder; null: a section without notes.
 */
export function writeDocsSection(root, text, key, tool, log = console.log) {
  const file = path.join(root, 'docs', 'benchmarks.md');
  let doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n\n<!-- notes -->\n';
  const begin = `<!-- ${key}:begin -->`, end = `<!-- ${key}:end -->`;
  const notesBegin = `<!-- ${key}:notes:begin -->`, notesEnd = `<!-- ${key}:notes:end -->`;
  const nb = doc.indexOf(notesBegin), ne = doc.indexOf(notesEnd);
  if (tool !== null) {
    const kept = nb !== -1 && ne > nb ? doc.slice(nb, ne + notesEnd.length)
      : `${notesBegin}\n### Notes\n\n(hand-written notes on these figures go here; kept across runs of ${tool})\n${notesEnd}`;
    text = text.replace(end, `${kept}\n${end}`);
  }
  const b = doc.indexOf(begin), e = doc.indexOf(end);
  if (b !== -1 && e > b) doc = doc.slice(0, b) + text + doc.slice(e + end.length);
  else {
    const n = doc.indexOf('<!-- notes -->');
    doc = n === -1 ? `${doc.trimEnd()}\n\n${text}\n` : `${doc.slice(0, n)}${text}\n\n${doc.slice(n)}`;
  }
  fs.writeFileSync(file, doc);
  log(`wrote ${path.relative(root, file)} (${key})`);
}

/**
 * Runs a node script that prints progress lines and then one JSON line (the load generators): echoes
 * the other lines through log, resolves with the parsed JSON, or null when it failed or printed none.
 */
export function runJsonTool(script, args, log) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('exit', (code) => {
      const lines = out.trim().split('\n');
      for (const l of lines) if (!l.startsWith('{')) log(`    ${l}`);
      const json = lines.filter((l) => l.startsWith('{')).pop();
      if (code !== 0 || !json) { log(`    !! ${path.basename(script)} exited with ${code}`); return resolve(null); }
      resolve(JSON.parse(json));
    });
  });
}

/**
 * Starts `perch start` (argv: node flags, cli.js, its arguments) and waits for its port. The benchmarks'
 * ports lie in the kernel's ephemeral range: a client connection can hold one for a moment (EADDRINUSE),
 * so a server that exits at start is started once more. Resolves with { proc, exited }.
 */
export async function startPerchProcess(argv, port, { stop, log }) {
  for (let attempt = 1; ; attempt++) {
    const proc = spawn(process.execPath, argv, { stdio: ['ignore', 'inherit', 'inherit'] });
    const exited = new Promise((r) => proc.once('exit', r));
    try {
      await Promise.race([waitPort(port, 30000), exited.then((c) => { throw new Error(`perch exited with ${c}`); })]);
      return { proc, exited };
    } catch (e) {
      await stop(proc, exited);
      if (attempt === 2) throw e;
      log(`    ${e.message}: starting it once more`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
