#!/usr/bin/env node
// Searches and pages of the archive at scale, two Perch builds on the same rows in one run: the
// 'before' build on a database at its schema (kept by `node bench/archive-schema.mjs --keep`, its
// "new" database), the 'after' build on a copy of it (CREATE DATABASE ... TEMPLATE, same pages)
// migrated to this build's schema. Each query alternates between the two, several rounds; PostgreSQL
// backend CPU per query (by pid, from /proc), p50/p99, and the answers compared (ids, count, index).
//
//   git worktree add /tmp/before <commit> && (cd /tmp/before && ln -s $PWD/node_modules && npm run build)
//   npm run build && node bench/archive-search-ab.mjs --before /tmp/before --db perch_schema_new [--reps 200] [--fresh-copy]
//
// The copy is named <db>_after and kept (a rerun reuses it; --fresh-copy makes it again); --same-db
// runs both builds on <db> itself, no copy (two builds' queries on one schema).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { pgBackendsCpu } from './resources.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, dflt) => { const i = argv.indexOf(`--${name}`); return i === -1 ? dflt : argv[i + 1]; };
const BEFORE = arg('before', null);
const DB = arg('db', 'perch_schema_new');
const REPS = Number(arg('reps', 200));
const ONLY = arg('only', null);
if (!BEFORE) { console.error('usage: node bench/archive-search-ab.mjs --before DIR --db NAME [--reps N] [--fresh-copy] [--same-db] [--only substring]'); process.exit(2); }
const ADMIN = process.env.ADMIN_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
const urlOf = (db) => ADMIN.replace(/\/[^/]*$/, `/${db}`);
const BIG_ROOM = 'big@conference.bench.local';
const log = (s) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

const admin = new pg.Client({ connectionString: ADMIN });
await admin.connect();
// --same-db: both builds on DB itself (two builds' queries on one schema and the same rows).
const SAME = argv.includes('--same-db');
const AFTER_DB = SAME ? DB : `${DB}_after`;
const exists = async (db) => (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [db])).rowCount > 0;
if (!SAME && (argv.includes('--fresh-copy') || !(await exists(AFTER_DB)))) {
  await admin.query(`DROP DATABASE IF EXISTS ${AFTER_DB}`);
  const t = performance.now();
  await admin.query(`CREATE DATABASE ${AFTER_DB} TEMPLATE ${DB}`);
  log(`copied ${DB} to ${AFTER_DB} in ${((performance.now() - t) / 1000).toFixed(0)} s`);
}

const builds = {};
for (const [kind, root, db] of [['before', path.resolve(BEFORE), DB], ['after', ROOT, AFTER_DB]]) {
  const { openPostgres } = await import(path.join(root, 'dist/storage/db-postgres.js'));
  const { migrate } = await import(path.join(root, 'dist/storage/migrations.js'));
  const { createSqlStores } = await import(path.join(root, 'dist/storage/sql-stores.js'));
  const handle = await openPostgres(urlOf(db));
  if (kind === 'after') {
    const t = performance.now();
    const n = await migrate(handle);
    if (n > 0) {
      log(`after: ${n} migration(s) applied in ${((performance.now() - t) / 1000).toFixed(0)} s`);
      await handle.query('VACUUM ANALYZE archive');
    }
  }
  builds[kind] = { kind, db, handle, stores: createSqlStores(handle) };
}
const both = [builds.before, builds.after];

// Every backend of the database: the builds take turns, so the other's are idle (--same-db too).
async function backendCpu(db) {
  // CPU seconds of the database's backends (bench/resources.mjs reads them from /proc by process title).
  return [...pgBackendsCpu(db).values()].reduce((x, y) => x + y, 0);
}
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const r2 = (x) => Math.round(x * 100) / 100;

const anchors = (await builds.before.handle.query(
  `SELECT stanza_id FROM archive WHERE archive = $1 AND id % 997 = 0 ORDER BY id LIMIT 50`, [BIG_ROOM])).map((r) => r.stanza_id);
const rooms = (r) => Array.from({ length: 20 }, (_, j) => `room${(r * 20 + j) % 1000}@conference.bench.local`);
// Each: [room or null for a search across archives, query].
const QUERIES = {
  'last page': () => [BIG_ROOM, { before: true, limit: 50 }],
  'page after an id': (r) => [BIG_ROOM, { after: anchors[r % anchors.length], limit: 50 }],
  'page before an id': (r) => [BIG_ROOM, { before: anchors[r % anchors.length], limit: 50 }],
  'full text, rare word': () => [BIG_ROOM, { fulltext: 'zyxwvut', before: true, limit: 50 }],
  'full text, mid word': () => [BIG_ROOM, { fulltext: 'w2000', before: true, limit: 50 }],
  'full text, mid word, newest page': () => [BIG_ROOM, { fulltext: 'w2000', limit: 50 }],
  'full text, common word': () => [BIG_ROOM, { fulltext: 'w1', before: true, limit: 50 }],
  'full text, common word, newest page': () => [BIG_ROOM, { fulltext: 'w1', limit: 50 }],
  'full text, mid word, small room': (r) => [`room${r % 1000}@conference.bench.local`, { fulltext: 'w300', before: true, limit: 50 }],
  'match (all words), mid words': () => [BIG_ROOM, { match: { text: 'w2000 w10', mode: 'all' }, limit: 50 }],
  'search of 20 rooms, mid word': (r) => [rooms(r), { fulltext: 'w2000', limit: 50 }],
};
const result = {};
for (const [name, make] of Object.entries(QUERIES)) {
  if (ONLY && !name.includes(ONLY)) continue;
  const times = { before: [], after: [] };
  const cpu = { before: 0, after: 0 };
  let answer = null;
  for (let r = -3; r < REPS; r++) {
    const [room, q] = make(Math.max(0, r));
    const answers = {};
    for (const s of r % 2 ? [builds.after, builds.before] : both) {
      const c0 = r >= 0 ? await backendCpu(s.db) : 0;
      const t = performance.now();
      const res = Array.isArray(room) ? await s.stores.archive.search(room, q) : await s.stores.archive.query(room, q);
      if (r >= 0) { times[s.kind].push(performance.now() - t); cpu[s.kind] += (await backendCpu(s.db)) - c0; }
      answers[s.kind] = JSON.stringify([res.entries.map((e) => e.stanzaId), res.count, res.firstIndex, res.complete]);
      if (r === 0) answer = `${res.entries.length}/${res.count ?? '-'}/${res.entries[0]?.stanzaId ?? ''}`;
    }
    if (answers.before !== answers.after) throw new Error(`${name}: the builds disagree\n before ${answers.before}\n after  ${answers.after}`);
  }
  result[name] = { answer, ...Object.fromEntries(both.map((s) => [s.kind, { p50_ms: r2(pct(times[s.kind], 50)), p99_ms: r2(pct(times[s.kind], 99)), cpu_ms: r2((cpu[s.kind] * 1000) / REPS) }])) };
  log(`${name}: ${JSON.stringify(result[name])}`);
}

const ratio = (a, b) => (a > 0 ? `${(b / a).toFixed(2)}×` : '-');
const lines = [`| query (page of 50) | answer (entries/count/first) | before p50 / p99 ms | after p50 / p99 ms | PostgreSQL CPU ms/query before / after | after/before CPU |`, '|---|---|---|---|---|---|'];
for (const [n, q] of Object.entries(result)) {
  lines.push(`| ${n} | ${q.answer} | ${q.before.p50_ms} / ${q.before.p99_ms} | ${q.after.p50_ms} / ${q.after.p99_ms} | ${q.before.cpu_ms} / ${q.after.cpu_ms} | ${ratio(q.before.cpu_ms, q.after.cpu_ms)} |`);
}
console.log(`\n${lines.join('\n')}\n`);
for (const s of both) await s.handle.close();
await admin.end();
