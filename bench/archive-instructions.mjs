#!/usr/bin/env node
// The archive append's PostgreSQL cost in instructions, two builds: each build's own append statement
// (captured from its ArchiveStore.write) run by a single-user PostgreSQL backend under valgrind's
// callgrind, which counts instructions, not seconds: the same figure twice for the same build whatever
// else the machine does, so a change of a few per cent shows where CPU time on a shared machine cannot.
// Memory stalls are not counted: a B-tree descent costs more time per instruction than parsing text,
// so quote the CPU-time benchmarks (bench/archive-append.mjs) beside this.
//
//   npm run build && node bench/archive-instructions.mjs --before DIR [--prefill 300] [--statements 10] [--messages 450]
//
// DIR is a checkout with dist/ built. Needs PostgreSQL's server binaries (initdb, postgres, pg_ctl under
// /usr/lib/postgresql/*/bin) and valgrind; a private cluster is made in a temporary directory, owned by
// the postgres user when this runs as root. For each build: a database migrated by that build, `--prefill`
// statements of one-to-one chat written through its store (VACUUM ANALYZE after), then `--statements`
// more, captured as SQL and run under callgrind. Reports instructions per message (the backend's start
// and stop, measured on an empty script, taken off) and where they go (the statement's parts, inclusive). A build before migration 15 folds the count deltas in one statement in 20 (random() < 0.05, on a fixed seed here); later ones fold beside the writes, not counted.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { privateCluster, chatBatch, captureAppends, preparedScript, printParts } from './pg-callgrind.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const arg = (name, dflt) => { const i = args.indexOf(name); return i === -1 ? dflt : args[i + 1]; };
const BEFORE = arg('--before', null);
if (!BEFORE) { console.error('usage: node bench/archive-instructions.mjs --before DIR [--prefill N] [--statements N] [--messages N]'); process.exit(2); }
const PREFILL = Number(arg('--prefill', 300));
const STATEMENTS = Number(arg('--statements', 10));
const MESSAGES = Number(arg('--messages', 450));
const PORT = Number(arg('--port', 5497));
const log = (s) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

const builds = [['before', path.resolve(BEFORE)], ['after', ROOT]].map(([name, root]) => ({ name, root, db: `perch_instr_${name}` }));
const cluster = privateCluster(PORT);
try {
  log(`private cluster in ${cluster.work} (PostgreSQL ${cluster.version})`);
  for (const b of builds) {
    const { db, createArchiveStore } = await cluster.migrated(b.root, b.db);
    const store = createArchiveStore(db, 'simple');
    const write = store.write ? (e) => store.write(e) : (e) => store.append(e);
    const t0 = Date.now();
    for (let s = 0; s < PREFILL; s++) await write(chatBatch(s * MESSAGES, MESSAGES));
    // No count deltas waiting: the measured statements' folds (seeded) then do the same work in both builds.
    await db.query('SELECT archive_count_fold()');
    await db.query('VACUUM ANALYZE');
    log(`${b.name}: ${b.db} migrated, ${(PREFILL * MESSAGES).toLocaleString('en-US')} messages written in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    // The measured statements, as this build's store makes them.
    b.script = path.join(cluster.work, `${b.name}.sql`);
    fs.writeFileSync(b.script, preparedScript(await captureAppends(createArchiveStore, PREFILL, STATEMENTS, MESSAGES, db)));
    await db.close?.();
  }
  const msgs = STATEMENTS * MESSAGES;
  await cluster.measure(builds, msgs, log);
  console.log(`\narchive append under callgrind: ${STATEMENTS} statements of ${MESSAGES} one-to-one messages (${2 * MESSAGES} rows) after ${(PREFILL * MESSAGES).toLocaleString('en-US')} messages; PostgreSQL ${cluster.version}`);
  console.log('| build | instructions per message | total |');
  console.log('|---|---|---|');
  for (const b of builds) console.log(`| ${b.name} | ${Math.round(b.perMessage).toLocaleString('en-US')} | ${b.total.toLocaleString('en-US')} |`);
  console.log(`after / before: ${(builds[1].perMessage / builds[0].perMessage).toFixed(3)}×`);
  printParts(builds, msgs);
} finally {
  cluster.remove(args.includes('--keep'));
}
