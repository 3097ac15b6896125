// Archive append throughput with and without the byte bookkeeping of migration 5 (archive_count.bytes,
// kept by the statement triggers): the same PostgreSQL, the same store code, the insert trigger's
// function swapped between the counting-only body of migration 3 and the counting-and-bytes body of
// migration 5, in alternating rounds so drift hits both alike. Two shapes: one-row appends one after
// another (a quiet room's commit, which a message waits for) and 100-row batches (a busy node's writer).
//
//   node bench/archive-bytes.mjs [--rounds 6] [--single 2000] [--batches 200] [--write-docs]
//
// Needs PostgreSQL (DATABASE_URL, default postgres://root@127.0.0.1:5432/test); works in its own schema,
// dropped at the end.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openPostgres } from '../dist/storage/db-postgres.js';
import { migrate } from '../dist/storage/migrations.js';
import { createSqlStores } from '../dist/storage/sql-stores.js';
import { writeDocsSection } from './lib.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i === -1 ? dflt : Number(args[i + 1]); };
const ROUNDS = opt('rounds', 6);
const SINGLE = opt('single', 2000);
const BATCHES = opt('batches', 200);
const BATCH = 100;
const url = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';
const schema = `bench_bytes_${process.pid}`;

const COUNT_ONLY = `CREATE OR REPLACE FUNCTION archive_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO archive_count (archive, n) SELECT archive, count(*) FROM new_rows GROUP BY archive ORDER BY archive ON CONFLICT (archive) DO UPDATE SET n = archive_count.n + EXCLUDED.n; RETURN NULL; END $$`;
const WITH_BYTES = `CREATE OR REPLACE FUNCTION archive_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO archive_count (archive, n, bytes) SELECT archive, count(*), sum(octet_length(stanza)) FROM new_rows GROUP BY archive ORDER BY archive ON CONFLICT (archive) DO UPDATE SET n = archive_count.n + EXCLUDED.n, bytes = archive_count.bytes + EXCLUDED.bytes; RETURN NULL; END $$`;

const db = await openPostgres(url, { schema });
let serial = 0;
const entry = (room) => {
  const n = ++serial;
  const body = `status update ${n}: the release build looks good, deploying to the next cluster after lunch`;
  return {
    archive: `room${room}@conference.bench.local`, stanzaId: `s${n}-${Math.random().toString(36).slice(2, 10)}`, stamp: new Date(),
    fromJid: `room${room}@conference.bench.local/user${n % 50}`, realJid: `user${n % 50}@bench.local`, body,
    stanza: `<message from='room${room}@conference.bench.local/user${n % 50}' type='groupchat' id='m${n}' xmlns='jabber:client'><body>${body}</body><occupant-id xmlns='urn:xmpp:occupant-id:0' id='o${n % 50}'/><stanza-id xmlns='urn:xmpp:sid:0' by='room${room}@conference.bench.local' id='s${n}'/></message>`,
  };
};

async function single(stores) {
  const t = performance.now();
  for (let i = 0; i < SINGLE; i++) await stores.archive.append([entry(i % 20)]);
  return SINGLE / ((performance.now() - t) / 1000);
}
async function batched(stores) {
  const t = performance.now();
  for (let i = 0; i < BATCHES; i++) await stores.archive.append(Array.from({ length: BATCH }, (_, k) => entry((i + k) % 20)));
  return (BATCHES * BATCH) / ((performance.now() - t) / 1000);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  await migrate(db);
  const stores = createSqlStores(db);
  const results = { count: { single: [], batched: [] }, bytes: { single: [], batched: [] } };
  // Warm-up: plans, caches, the table's first pages.
  await db.query(WITH_BYTES);
  await single(stores); await batched(stores);
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of r % 2 === 0 ? ['count', 'bytes'] : ['bytes', 'count']) {
      await db.query(mode === 'count' ? COUNT_ONLY : WITH_BYTES);
      results[mode].single.push(await single(stores));
      results[mode].batched.push(await batched(stores));
    }
  }
  await db.query(WITH_BYTES);
  const [{ n }] = await db.query('SELECT count(*) AS n FROM archive');
  const f = (x) => Math.round(x).toLocaleString('en-US');
  const ratio = (shape) => (median(results.bytes[shape]) / median(results.count[shape])).toFixed(2);
  const date = new Date().toISOString().slice(0, 10);
  const text = `<!-- archive-bytes:begin -->
## Archive appends with the byte bookkeeping (bench/archive-bytes.mjs)

Run ${date}: PostgreSQL at ${url.replace(/\/\/[^@]*@/, '//')}, ${ROUNDS} alternating rounds per trigger body, ${f(Number(n))} rows in the archive at the end; medians of the rounds' rows/s.

| Shape | Count only (migration 3 trigger) | Count and bytes (migration 5 trigger) | Ratio |
|---|---|---|---|
| one-row appends, one after another (${f(SINGLE)} per round) | ${f(median(results.count.single))} | ${f(median(results.bytes.single))} | ${ratio('single')} |
| ${BATCH}-row batches (${f(BATCHES * BATCH)} rows per round) | ${f(median(results.count.batched))} | ${f(median(results.bytes.batched))} | ${ratio('batched')} |
<!-- archive-bytes:end -->`;
  console.log(text);
  console.log(JSON.stringify(results));
  if (args.includes('--write-docs')) writeDocsSection(ROOT, text, 'archive-bytes', 'bench/archive-bytes.mjs');
} finally {
  await db.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => {});
  await db.close();
}
