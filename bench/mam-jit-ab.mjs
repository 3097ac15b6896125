#!/usr/bin/env node
// A room's MAM reads through two Perch builds' stores on the same database, alternating query by query:
// the last page of 50 with its count, a page before an id, and full text for a rare and a common word
// (the words bench/archive-load.mjs puts in 1 message in 1,000 and in 100). For a change in how the
// store talks to PostgreSQL (connection settings, statements), measured on rows already loaded, e.g. the
// 10,000,000-message room `node bench/muc.mjs --no-prosody --no-ejabberd --cases mam-large --mam-rows
// 10000000 --no-docs --keep-db` leaves behind.
//
//   npm run build && node bench/mam-jit-ab.mjs --before DIR --db NAME [--room JID] [--reps 50]
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FT_COMMON, FT_RARE } from './archive-load.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, dflt) => { const i = argv.indexOf(`--${name}`); return i === -1 ? dflt : argv[i + 1]; };
const BEFORE = arg('before', null), DB = arg('db', null);
const ROOM = arg('room', 'archive-large@conference.bench.local');
const REPS = Number(arg('reps', 50));
if (!BEFORE || !DB) { console.error('usage: node bench/mam-jit-ab.mjs --before DIR --db NAME [--room JID] [--reps N]'); process.exit(2); }
const URL = (process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/test').replace(/\/[^/]*$/, `/${DB}`);
const quantile = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]; };

const builds = [];
for (const [name, root] of [['before', path.resolve(BEFORE)], ['after', ROOT]]) {
  const dist = root.endsWith('dist') ? root : path.join(root, 'dist');
  const { openPostgres } = await import(path.join(dist, 'storage/db-postgres.js'));
  const { createSqlStores } = await import(path.join(dist, 'storage/sql-stores.js'));
  const db = await openPostgres(URL);
  builds.push({ name, db, archive: createSqlStores(db).archive, times: new Map() });
}
// A page before an id from the middle of the room, the same for both builds.
const [mid] = await builds[1].db.query('SELECT stanza_id FROM archive WHERE archive = $1 ORDER BY id DESC OFFSET 5000 LIMIT 1', [ROOM]);
const queries = [
  ['last page', { limit: 50, before: true }],
  ['page before an id', { limit: 50, before: mid.stanza_id }],
  [`full text, 1 in ${FT_RARE.every}`, { limit: 50, before: true, fulltext: FT_RARE.word }],
  [`full text, 1 in ${FT_COMMON.every}`, { limit: 50, before: true, fulltext: FT_COMMON.word }],
];
for (let rep = -3; rep < REPS; rep++) { // three untimed rounds first
  for (const [label, q] of queries) {
    for (const b of rep % 2 === 0 ? builds : [...builds].reverse()) {
      const t0 = performance.now();
      const page = await b.archive.query(ROOM, q);
      const ms = performance.now() - t0;
      if (page.entries.length === 0) throw new Error(`${b.name}: ${label}: no entries`);
      if (rep >= 0) (b.times.get(label) ?? b.times.set(label, []).get(label)).push(ms);
    }
  }
}
console.log(`${ROOM} in ${DB}: ${REPS} of each query per build after 3 untimed, builds alternating; ms, measured in this process around the store's query`);
console.log('| query | before p50 / p99 | after p50 / p99 | after / before p50 |');
console.log('|---|---|---|---|');
for (const [label] of queries) {
  const [b, a] = builds.map((x) => x.times.get(label));
  console.log(`| ${label} | ${quantile(b, 0.5).toFixed(2)} / ${quantile(b, 0.99).toFixed(2)} | ${quantile(a, 0.5).toFixed(2)} / ${quantile(a, 0.99).toFixed(2)} | ${(quantile(a, 0.5) / quantile(b, 0.5)).toFixed(2)}× |`);
}
for (const b of builds) await b.db.close();
