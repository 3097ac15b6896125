#!/usr/bin/env node
// The fault-injection soak, by hand: three Perch nodes on a private PostgreSQL cluster and a private
// redis-server (both started and stopped here), clients with stream management sending numbered
// messages, each fault injected in turn, then the table of what was acknowledged and what was kept.
// The harness is conformance/faults/ (built to dist/ by `npm run build`); CI runs one short round of
// each fault through conformance/faults.test.ts.
//
//   npm run build && node bench/faults.mjs                       the soak (3 rounds of every fault)
//   node bench/faults.mjs --short                                the CI short form (one round each)
//   node bench/faults.mjs --rounds 5 --faults kill-owner,redis-cut --duration 30 --rate 10 --json
//
// Options: --rounds N, --faults a,b (names below), --duration S (a lasting fault, the Redis cut),
// --rate N (messages/s per sending client), --restart-after S (a killed node's time down),
// --port-base P (fixed ports P..P+4: Redis, PostgreSQL, three proxies), --json (results as JSON on
// stdout; progress on stderr), --verbose (each step of each round).
// Needs runuser, a postgres user, PostgreSQL server binaries (PG_BIN or /usr/lib/postgresql/*/bin)
// and redis-server. Run as root (initdb and pg_ctl run as postgres).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(ROOT, 'dist/conformance/faults/run.js');
if (!existsSync(dist)) {
  console.error('bench/faults.mjs: build first (npm run build)');
  process.exit(2);
}
const { runFaults, SHORT, SOAK } = await import(dist);
const { FAULTS } = await import(path.join(ROOT, 'dist/conformance/faults/faults.js'));
const { formatTable } = await import(path.join(ROOT, 'dist/conformance/faults/round.js'));
const { missingTools } = await import(path.join(ROOT, 'dist/conformance/faults/services.js'));

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  console.log(`usage: node bench/faults.mjs [--short] [--rounds N] [--faults ${[...FAULTS.keys()].join(',')}]
       [--duration S] [--rate N] [--restart-after S] [--port-base P] [--json] [--verbose]`);
  process.exit(0);
}
const value = (name) => {
  const i = argv.indexOf(name);
  if (i === -1) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) { console.error(`${name} needs a value`); process.exit(2); }
  return v;
};
const number = (name) => {
  const v = value(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) { console.error(`${name}: not a positive number: ${v}`); process.exit(2); }
  return n;
};
const json = argv.includes('--json');
const verbose = argv.includes('--verbose');
const base = argv.includes('--short') ? SHORT : SOAK;
const opts = { ...base, portBase: number('--port-base') ?? 43200 };
if (value('--faults')) opts.faults = value('--faults').split(',').map((s) => s.trim()).filter(Boolean);
if (number('--rounds')) opts.rounds = number('--rounds');
if (number('--duration')) opts.durationMs = number('--duration') * 1000;
if (number('--rate')) opts.rate = number('--rate');
if (number('--restart-after')) opts.restartAfterMs = number('--restart-after') * 1000;
for (const f of opts.faults) if (!FAULTS.has(f)) { console.error(`unknown fault ${f}; known: ${[...FAULTS.keys()].join(', ')}`); process.exit(2); }
const missing = missingTools();
if (missing) { console.error(`bench/faults.mjs: ${missing}`); process.exit(2); }

// Ctrl-C still stops the private services and the nodes (their 'exit' handlers).
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const progress = (line) => { if (verbose || !line.startsWith('  [')) process.stderr.write(line + '\n'); };
const results = await runFaults({ ...opts, log: progress });
if (json) {
  process.stdout.write(JSON.stringify({ options: opts, results }, null, 2) + '\n');
} else {
  console.log(formatTable(results));
  for (const r of results) {
    if (r.lost || r.duplicated) console.log(`${r.fault} #${r.round}: lost ${r.lost} (room ${r.detail.lostRoom}, one-to-one ${r.detail.lostChat}), duplicated ${r.duplicated}; e.g. ${[...r.detail.lostExamples, ...r.detail.duplicateExamples].join('; ')}`);
    if (r.reordered) console.log(`${r.fault} #${r.round}: reordered ${r.reordered}; e.g. ${r.detail.reorderedExamples.join('; ')}\n${r.detail.notes.join('\n')}`);
  }
}
process.exit(results.some((r) => r.lost || r.duplicated || r.reordered) ? 1 : 0);
