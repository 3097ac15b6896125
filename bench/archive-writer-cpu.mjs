#!/usr/bin/env node
// The archive writer's own CPU per message, in process, before/after: each build's ArchiveWriter (dist/)
// over a store that commits at once (no database), one-to-one messages (two copies in one statement)
// over many conversations, builds alternating round by round. What the lanes add to the hot path.
//
//   npm run build && node bench/archive-writer-cpu.mjs --before /tmp/writer-before [--rounds 5] [--messages 200000]
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, dflt) => { const i = argv.indexOf(name); return i === -1 ? dflt : argv[i + 1]; };
const BEFORE = arg('--before', null);
if (!BEFORE) { console.error('usage: node bench/archive-writer-cpu.mjs --before DIR [--rounds N] [--messages M]'); process.exit(2); }
const ROUNDS = Number(arg('--rounds', 5));
const MESSAGES = Number(arg('--messages', 200_000));
const USERS = 1000;

const load = async (root) => (await import(pathToFileURL(path.join(root, 'dist/src/archive-writer.js')).href)).ArchiveWriter;
const builds = [
  { name: 'before (one writer)', W: await load(path.resolve(BEFORE)), opts: [] },
  { name: 'after, 1 lane', W: await load(ROOT), opts: [500, { lanes: 1 }] },
  { name: 'after, 4 lanes', W: await load(ROOT), opts: [500, { lanes: 4 }] },
].map((b) => ({ ...b, us: [] }));

// A store that commits after a timer turn (so batches form as they do against a database).
// append: builds before the writer called write (which returns no ids)
const store = {
  append: (entries) => new Promise((r) => setImmediate(() => r(entries.map((e, i) => ({ id: i, stanzaId: e.stanzaId }))))),
  write: () => new Promise((r) => setImmediate(r)),
};
const entry = (archive, n) => ({ archive, stanzaId: `s${n}`, stamp: new Date(0), fromJid: archive, realJid: null, body: 'b', stanza: '<message/>' });
const archives = Array.from({ length: USERS }, (_, i) => `user${i}@bench.local`);

async function run(b) {
  const w = new b.W(store, ...b.opts);
  const t0 = process.cpuUsage();
  // a window of 2,000 messages in flight, refilled as they commit
  let sent = 0;
  await new Promise((resolve) => {
    let done = 0;
    const send = () => {
      const n = sent++;
      const a = archives[n % USERS], other = archives[(n * 7 + 1) % USERS];
      w.append(entry(a, n), null, [entry(other, n)]).then(() => { if (++done === MESSAGES) resolve(); else if (sent < MESSAGES) send(); });
    };
    for (let i = 0; i < 2000; i++) send();
  });
  await w.flushed();
  const u = process.cpuUsage(t0);
  return (u.user + u.system) / MESSAGES;
}

for (let r = 0; r < ROUNDS; r++) for (const b of r % 2 ? [...builds].reverse() : builds) b.us.push(await run(b));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
for (const b of builds) console.log(`${b.name}: ${median(b.us).toFixed(2)} µs CPU per message (rounds ${b.us.map((x) => x.toFixed(2)).join(', ')})`);
console.log(`4 lanes / before: ${(median(builds[2].us) / median(builds[0].us)).toFixed(2)}×`);
