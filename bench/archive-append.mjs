#!/usr/bin/env node
// The archive's append statement, two builds in one process: the batches the group-commit writer makes
// for one-to-one chat (each message's two copies: the recipient's, then the sender's with the same
// stanza) written through each build's ArchiveStore (write where the build has it, else append) into
// its own fresh PostgreSQL database, the builds alternating round by round. Reports, per message, the
// CPU of this process (building the statement's parameters, the driver's encoding, the reply) and of
// the database's backend (from /proc), median over rounds, and the ratios. No sockets or server: the
// figure is the append's own cost, far steadier than a chat benchmark on a shared machine.
//
//   npm run build && node bench/archive-append.mjs --before DIR [--rounds 7] [--statements 40] [--messages 450]
//
// DIR is a checkout with dist/ built (git worktree add DIR <commit>, link node_modules, npm run build).
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { pgBackendsCpu } from './resources.mjs';
import { chatCopies } from './lib.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const arg = (name, dflt) => { const i = args.indexOf(name); return i === -1 ? dflt : args[i + 1]; };
const BEFORE = arg('--before', null);
if (!BEFORE) { console.error('usage: node bench/archive-append.mjs --before DIR [--rounds N] [--statements S] [--messages M]'); process.exit(2); }
const ROUNDS = Number(arg('--rounds', 7));
const STATEMENTS = Number(arg('--statements', 40));
const MESSAGES = Number(arg('--messages', 450));
const ADMIN = process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/test';
const DOMAIN = 'bench.local';

const admin = new pg.Client({ connectionString: ADMIN });
await admin.connect();
const builds = [];
for (const [name, root] of [['before', path.resolve(BEFORE)], ['after', ROOT]]) {
  const load = (f) => import(pathToFileURL(path.join(root, 'dist', 'storage', f)).href);
  const [{ openPostgres }, { migrate }, { createSqlStores }] = await Promise.all([load('db-postgres.js'), load('migrations.js'), load('sql-stores.js')]);
  const dbName = `perch_append_${name}_${process.pid}`;
  await admin.query(`CREATE DATABASE ${dbName}`);
  const db = await openPostgres(ADMIN.replace(/\/[^/]*$/, `/${dbName}`));
  await migrate(db);
  const stores = createSqlStores(db);
  const store = stores.archive;
  const append = store.write ? (e) => store.write(e) : (e) => store.append(e);
  builds.push({ name, root, dbName, db, append, node: [], backend: [] });
}

/** µs of CPU the database's backends have used (bench/resources.mjs reads them from /proc). */
const backendUs = (dbName) => [...pgBackendsCpu(dbName).values()].reduce((a, b) => a + b, 0) * 1e6;

let seq = 0;
/** One statement's entries: MESSAGES messages between 1,000 users, two copies each, as mam.ts makes them. */
function batch() {
  const entries = [];
  for (let m = 0; m < MESSAGES; m++) entries.push(...chatCopies(seq++, DOMAIN, new Date()));
  return entries;
}

// Warm-up: each build's statement planned and its partitions' pages in memory.
for (const b of builds) for (let i = 0; i < 3; i++) await b.append(batch());
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? builds : [...builds].reverse();
  for (const b of order) {
    const batches = Array.from({ length: STATEMENTS }, batch);
    const t0 = backendUs(b.dbName);
    const c0 = process.cpuUsage();
    for (const entries of batches) await b.append(entries);
    const c = process.cpuUsage(c0);
    const t = backendUs(b.dbName) - t0;
    const msgs = STATEMENTS * MESSAGES;
    b.node.push((c.user + c.system) / msgs);
    b.backend.push(t / msgs);
  }
}
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const f1 = (x) => x.toFixed(1);
console.log(`archive append, one-to-one: ${MESSAGES} messages (${2 * MESSAGES} rows) a statement, ${STATEMENTS} statements a round, ${ROUNDS} rounds; CPU µs per message, median (range)`);
console.log('| build | this process (statement, driver) | PostgreSQL backend | total |');
console.log('|---|---|---|---|');
for (const b of builds) {
  const tot = b.node.map((x, i) => x + b.backend[i]);
  console.log(`| ${b.name} | ${f1(median(b.node))} (${f1(Math.min(...b.node))}–${f1(Math.max(...b.node))}) | ${f1(median(b.backend))} (${f1(Math.min(...b.backend))}–${f1(Math.max(...b.backend))}) | ${f1(median(tot))} |`);
}
const [before, after] = builds;
const ratio = (k) => (median(after[k]) / median(before[k])).toFixed(2);
console.log(`after / before: process ${ratio('node')}×, backend ${ratio('backend')}×, total ${(median(after.node.map((x, i) => x + after.backend[i])) / median(before.node.map((x, i) => x + before.backend[i]))).toFixed(2)}×`);
for (const b of builds) { await b.db.close?.(); await admin.query(`DROP DATABASE IF EXISTS ${b.dbName} WITH (FORCE)`); }
await admin.end();
