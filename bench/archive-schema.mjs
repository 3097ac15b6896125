#!/usr/bin/env node
// The archive's schema at scale, before and after, in one run: two PostgreSQL databases with the same
// generated rows, one migrated to the single table of migrations 1-9 (five B-tree indexes, GIN, count
// upserts), one to the current schema (counts by deltas, monthly partitions, narrower indexes). Both are
// bulk-loaded alike (server-side generator, 24 months of stamps, one big room plus 1,000 others), then:
//  - appends as the group-commit writer makes them (500 rows a statement, through ArchiveStore.append),
//    alternating between the two: wall time per batch and PostgreSQL backend CPU per row;
//  - concurrent appends to one archive (4 writers, 50 rows each): rows/s, the count lock's cost;
//  - bytes per row, table and each index;
//  - each MAM query (ArchiveStore.query, the SQL the server runs) p50/p99, alternating.
//
//   node bench/archive-schema.mjs [--rows 1000000] [--big 1000000] [--batches 200] [--reps 200] [--keep] [--reuse] [--prefix perch_schema] [--write-docs]
//
// Needs PostgreSQL (ADMIN_URL, default postgres://root@127.0.0.1:5432/postgres) on this machine (backend
// CPU is read from /proc); makes databases perch_schema_old and perch_schema_new, dropped at the end
// unless --keep (then a second run with --reuse skips the load); --prefix names them otherwise.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { pgBackendsCpu } from './resources.mjs';
import { openPostgres } from '../dist/storage/db-postgres.js';
import { migrate } from '../dist/storage/migrations.js';
import { ensureArchivePartitions, tsvFilledByWriters } from '../dist/storage/archive-partitions.js';
import { createSqlStores } from '../dist/storage/sql-stores.js';
import { prng } from './lib.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i === -1 ? dflt : Number(args[i + 1]); };
const flag = (name) => args.includes(`--${name}`);
const ROWS = opt('rows', 1_000_000);
const BIG = opt('big', Math.min(ROWS, 1_000_000));
const BATCHES = opt('batches', 200);
const REPS = opt('reps', 200);
const CHUNK = 100_000;
const ADMIN = process.env.ADMIN_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
const BIG_ROOM = 'big@conference.bench.local';
const DAY = 86_400;
const T_END = Math.floor(Date.now() / 1000) - DAY;
const T0 = T_END - 730 * DAY;
const STEP = (T_END - T0) / ROWS;
const log = (s) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

// --prefix: the databases' names are <prefix>_old and <prefix>_new (several runs side by side).
const PREFIX = args.includes('--prefix') ? args[args.indexOf('--prefix') + 1] : 'perch_schema';
const NAMES = { old: `${PREFIX}_old`, new: `${PREFIX}_new` };
const admin = new pg.Client({ connectionString: ADMIN });
await admin.connect();
const urlOf = (db) => ADMIN.replace(/\/[^/]*$/, `/${db}`);

async function openSchema(kind) {
  const reuse = flag('reuse');
  if (!reuse) {
    await admin.query(`DROP DATABASE IF EXISTS ${NAMES[kind]}`);
    await admin.query(`CREATE DATABASE ${NAMES[kind]}`);
  }
  const db = await openPostgres(urlOf(NAMES[kind]));
  // A kept "new" database follows this build's schema (the migrations added since it was loaded).
  if (reuse && kind === 'new') await migrate(db);
  if (!reuse) {
    // The old schema: the migrations before the partitioned archive (counts by upsert, one table).
    await migrate(db, undefined, kind === 'old' ? 9 : undefined);
    if (kind === 'new') await ensureArchivePartitions(db, { from: new Date(T0 * 1000) });
    // Today's query code reads the kept sizes through archive_size; on the old schema that is archive_count itself.
    // Today's append writes tsv itself (migration 14): on the old schema it is made a column the writer fills too,
    // so the old appends skip the second to_tsvector of a one-to-one message the true old schema computed.
    if (kind === 'old') {
      await db.query('CREATE VIEW archive_size AS SELECT archive, n, bytes FROM archive_count');
      await db.query('CREATE TABLE archive_count_delta (archive text NOT NULL, n bigint NOT NULL, bytes bigint NOT NULL)');
      await tsvFilledByWriters(db, 'archive', 'simple');
    }
    await db.query(`CREATE FUNCTION bench_u(i bigint, j int) RETURNS float8 IMMUTABLE LANGUAGE sql AS
      $$ SELECT (hashint8extended(i, j) & 2147483647)::float8 / 2147483648 $$`);
  }
  return { kind, db, stores: createSqlStores(db), cpu: 0 };
}

// Rows i in [lo, hi): the big room's share BIG/ROWS, the rest over 1,000 rooms; 50 senders, the first
// ones far busier (u^2), and a rare one (nick99) in 0.1 %; bodies of 10 words w0..w4999 (u^4: w0 is
// common, w4000 rare) and 'zyxwvut' in 1 row of 10,000; stamps evenly over two years, in id order.
const GENERATE = `
INSERT INTO archive (archive, stanza_id, stamp, from_jid, real_jid, body, stanza)
SELECT a, 's' || i, to_timestamp(${T0} + i * ${STEP}), a || '/nick' || k, 'user' || k || '@bench.local', b,
  '<message xmlns="jabber:client" from="' || a || '/nick' || k || '" type="groupchat" id="m' || i || '"><body>' || b ||
  '</body><occupant-id xmlns="urn:xmpp:occupant-id:0" id="o' || k || '"/><stanza-id xmlns="urn:xmpp:sid:0" by="' || a || '" id="s' || i || '"/></message>'
FROM (SELECT i,
  CASE WHEN bench_u(i, 0) < ${BIG / ROWS} THEN '${BIG_ROOM}' ELSE 'room' || floor(bench_u(i, 1) * 1000)::int || '@conference.bench.local' END AS a,
  CASE WHEN bench_u(i, 2) < 0.001 THEN 99 ELSE floor(50 * power(bench_u(i, 3), 2))::int END AS k,
  concat_ws(' ', ${Array.from({ length: 10 }, (_, j) => `'w' || floor(5000 * power(bench_u(i, ${10 + j}), 4))::int`).join(', ')},
    CASE WHEN bench_u(i, 4) < 0.0001 THEN 'zyxwvut' END) AS b
  FROM generate_series($1::bigint, $2::bigint - 1) AS i) g
ORDER BY i`;

/** CPU seconds of this database's backends so far (utime + stime from /proc). */
async function backendCpu(kind) {
  // CPU seconds of the database's backends (bench/resources.mjs reads them from /proc by process title).
  return [...pgBackendsCpu(NAMES[kind]).values()].reduce((x, y) => x + y, 0);
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const r2 = (x) => Math.round(x * 100) / 100;

const S = { old: await openSchema('old'), new: await openSchema('new') };
const both = [S.old, S.new];
const result = { rows: ROWS, big: BIG, load: {}, append: {}, concurrent: {}, sizes: {}, queries: {} };

// 1. Bulk load, alternating chunks. The indexes (and the old primary key) are made after the rows are
// in, as one builds an index on a loaded table: the load is the set-up, the appends below the measure.
if (!flag('reuse')) {
  const took = { old: 0, new: 0 };
  const rebuild = {};
  for (const s of both) {
    const defs = await s.db.query(`SELECT indexname, replace(indexdef, ' ON ONLY ', ' ON ') AS def FROM pg_indexes
      WHERE schemaname = current_schema() AND tablename = 'archive' AND indexname <> 'archive_pkey'`);
    const pkey = (await s.db.query(`SELECT 1 FROM pg_constraint WHERE conname = 'archive_pkey'`)).length > 0;
    if (pkey) await s.db.query('ALTER TABLE archive DROP CONSTRAINT archive_pkey');
    for (const d of defs) await s.db.query(`DROP INDEX ${d.indexname}`);
    rebuild[s.kind] = [...(pkey ? ['ALTER TABLE archive ADD PRIMARY KEY (id)'] : []), ...defs.map((d) => d.def)];
  }
  for (let lo = 0; lo < ROWS; lo += CHUNK) {
    const hi = Math.min(ROWS, lo + CHUNK);
    for (const s of (lo / CHUNK) % 2 ? [S.new, S.old] : both) {
      const t = performance.now();
      await s.db.query(GENERATE, [lo, hi]);
      took[s.kind] += performance.now() - t;
    }
    if ((hi / CHUNK) % 10 === 0 || hi === ROWS) log(`loaded ${hi.toLocaleString('en-US')} rows (old ${(took.old / 1000).toFixed(0)} s, new ${(took.new / 1000).toFixed(0)} s)`);
  }
  for (const s of both) {
    const t = performance.now();
    await s.db.transaction(async (tx) => {
      await tx.query("SET LOCAL maintenance_work_mem = '512MB'");
      for (const def of rebuild[s.kind]) await tx.query(def);
    });
    took[s.kind] += performance.now() - t;
    log(`${s.kind}: indexes built in ${((performance.now() - t) / 1000).toFixed(0)} s`);
    await s.db.query('VACUUM ANALYZE archive');
    await s.db.query('VACUUM ANALYZE archive_count');
    result.load[s.kind] = { rows_per_s: Math.round(ROWS / (took[s.kind] / 1000)) };
  }
}

// A rerun on kept databases (--reuse): the rows the last run appended go first (its concurrent phase
// appended different numbers to each), so both hold the generated rows alone again.
if (flag('reuse')) {
  for (const s of both) {
    await s.db.query(`DELETE FROM archive WHERE stanza_id LIKE 'a%'`);
    await s.db.query('VACUUM ANALYZE archive');
  }
  log('reuse: appended rows of the last run removed');
}

// 2. Appends as the writer makes them: 500 rows, mostly distinct archives, stamped now.
const rnd = prng(13);
let serial = 0;
function batch(n, archive) {
  const out = [];
  for (let j = 0; j < n; j++) {
    const i = ++serial;
    const a = archive ?? (rnd() < 0.1 ? BIG_ROOM : `room${Math.floor(rnd() * 1000)}@conference.bench.local`);
    const k = Math.floor(50 * rnd() ** 2);
    const body = Array.from({ length: 10 }, () => `w${Math.floor(5000 * rnd() ** 4)}`).join(' ');
    out.push({
      archive: a, stanzaId: `a${i}-${process.pid}`, stamp: new Date(), fromJid: `${a}/nick${k}`, realJid: `user${k}@bench.local`, body,
      stanza: `<message xmlns="jabber:client" from="${a}/nick${k}" type="groupchat" id="n${i}"><body>${body}</body><occupant-id xmlns="urn:xmpp:occupant-id:0" id="o${k}"/><stanza-id xmlns="urn:xmpp:sid:0" by="${a}" id="a${i}"/></message>`,
    });
  }
  return out;
}
{
  const times = { old: [], new: [] };
  const cpu = { old: 0, new: 0 };
  for (let b = 0; b < BATCHES; b++) {
    const rows = batch(500);
    for (const s of b % 2 ? [S.new, S.old] : both) {
      const c0 = await backendCpu(s.kind);
      const t = performance.now();
      await s.stores.archive.append(rows);
      times[s.kind].push(performance.now() - t);
      cpu[s.kind] += (await backendCpu(s.kind)) - c0;
    }
  }
  for (const s of both) {
    result.append[s.kind] = {
      batch_p50_ms: r2(pct(times[s.kind], 50)), batch_p99_ms: r2(pct(times[s.kind], 99)),
      us_per_row: r2((times[s.kind].reduce((x, y) => x + y, 0) * 1000) / (BATCHES * 500)),
      cpu_us_per_row: r2((cpu[s.kind] * 1e6) / (BATCHES * 500)),
    };
  }
  log(`appends: ${JSON.stringify(result.append)}`);
}

// 3. Bytes per row: heap (with TOAST), each index; partitions summed under their parent's name.
for (const s of both) {
  await s.db.query('VACUUM ANALYZE archive');
  const [{ n }] = await s.db.query('SELECT count(*)::bigint AS n FROM archive');
  const rels = await s.db.query(`
    WITH parts AS (SELECT relid FROM pg_partition_tree('archive') WHERE isleaf
                   UNION SELECT 'archive'::regclass WHERE (SELECT relkind FROM pg_class WHERE oid = 'archive'::regclass) = 'r')
    SELECT 'table (heap + TOAST)' AS name, sum(pg_table_size(relid))::bigint AS bytes FROM parts
    UNION ALL
    SELECT COALESCE(pi.relname, ci.relname), sum(pg_relation_size(i.indexrelid))::bigint
      FROM parts p JOIN pg_index i ON i.indrelid = p.relid JOIN pg_class ci ON ci.oid = i.indexrelid
      LEFT JOIN pg_inherits h ON h.inhrelid = i.indexrelid LEFT JOIN pg_class pi ON pi.oid = h.inhparent
      GROUP BY 1`);
  const [c] = await s.db.query(`SELECT pg_total_relation_size('archive_count') + COALESCE(pg_total_relation_size(to_regclass('archive_count_delta')), 0) AS b`);
  result.sizes[s.kind] = { rows: Number(n), per_row: Object.fromEntries(rels.map((r) => [r.name, r2(Number(r.bytes) / Number(n))])), counts_bytes: Number(c.b) };
  result.sizes[s.kind].total_per_row = r2(rels.reduce((x, r) => x + Number(r.bytes), 0) / Number(n));
}
log(`sizes: ${JSON.stringify(result.sizes)}`);

// 4. Queries, each alternating between the schemas.
const anchors = (await S.old.db.query(
  `SELECT stanza_id FROM archive WHERE archive = $1 AND id % 997 = 0 ORDER BY id LIMIT 50`, [BIG_ROOM])).map((r) => r.stanza_id);
const mid = new Date((T0 + 365 * DAY) * 1000);
const QUERIES = {
  'last page': () => ({ before: true, limit: 50 }),
  'page after an id': (r) => ({ after: anchors[r % anchors.length], limit: 50 }),
  'page before an id': (r) => ({ before: anchors[r % anchors.length], limit: 50 }),
  'with a busy sender (bare JID)': () => ({ with: { realJid: 'user3@bench.local' }, before: true, limit: 50 }),
  'with a rare sender (bare JID)': () => ({ with: { realJid: 'user99@bench.local' }, before: true, limit: 50 }),
  'with an occupant (full JID)': () => ({ with: { occupant: `${BIG_ROOM}/nick7` }, before: true, limit: 50 }),
  'a day window, first page': (r) => ({ start: new Date(mid.getTime() + (r % 30) * DAY * 1000), end: new Date(mid.getTime() + ((r % 30) + 1) * DAY * 1000), limit: 50 }),
  'a day window, last page': (r) => ({ start: new Date(mid.getTime() + (r % 30) * DAY * 1000), end: new Date(mid.getTime() + ((r % 30) + 1) * DAY * 1000), before: true, limit: 50 }),
  'full text, rare word': () => ({ fulltext: 'zyxwvut', before: true, limit: 50 }),
  'full text, mid word': () => ({ fulltext: 'w2000', before: true, limit: 50 }),
  'full text, common word': () => ({ fulltext: 'w1', before: true, limit: 50 }),
  'small room, last page': (r) => ({ before: true, limit: 50, room: `room${r % 1000}@conference.bench.local` }),
};
for (const [name, make] of Object.entries(QUERIES)) {
  const times = { old: [], new: [] };
  const cpu = { old: 0, new: 0 };
  let shape = null;
  for (let r = -3; r < REPS; r++) {
    const q = make(Math.max(0, r));
    const room = q.room ?? BIG_ROOM;
    delete q.room;
    for (const s of r % 2 ? [S.new, S.old] : both) {
      const c0 = r >= 0 ? await backendCpu(s.kind) : 0;
      const t = performance.now();
      const res = await s.stores.archive.query(room, q);
      if (r >= 0) times[s.kind].push(performance.now() - t);
      if (r >= 0) cpu[s.kind] += (await backendCpu(s.kind)) - c0;
      const got = `${res.entries.length}/${res.count ?? '-'}/${res.entries[0]?.stanzaId ?? ''}`;
      if (r === 0) { if (shape === null) shape = got; else if (shape !== got) throw new Error(`${name}: the schemas disagree (${shape} vs ${got})`); }
    }
  }
  result.queries[name] = Object.fromEntries(both.map((s) => [s.kind, { p50_ms: r2(pct(times[s.kind], 50)), p99_ms: r2(pct(times[s.kind], 99)), cpu_ms: r2((cpu[s.kind] * 1000) / REPS) }]));
  result.queries[name].answer = shape;
  log(`${name}: ${JSON.stringify(result.queries[name])}`);
}
{
  const times = { old: [], new: [] };
  for (let r = 0; r < REPS; r++) for (const s of r % 2 ? [S.new, S.old] : both) {
    const t = performance.now();
    await s.stores.archive.sizes([BIG_ROOM, `room${r % 1000}@conference.bench.local`]);
    times[s.kind].push(performance.now() - t);
  }
  result.queries['sizes (count and bytes)'] = Object.fromEntries(both.map((s) => [s.kind, { p50_ms: r2(pct(times[s.kind], 50)), p99_ms: r2(pct(times[s.kind], 99)) }]));
}

// 6. Concurrent appends to one archive (last: the schemas' rows differ after it): 4 writers, 50 rows a
// statement, 5 s each schema, twice alternating.
{
  const rate = { old: [], new: [] };
  for (let round = 0; round < 2; round++) {
    for (const s of round % 2 ? [S.new, S.old] : both) {
      let n = 0;
      const until = performance.now() + 5000;
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (performance.now() < until) { await s.stores.archive.append(batch(50, BIG_ROOM)); n += 50; }
      }));
      rate[s.kind].push(n / 5);
    }
  }
  for (const s of both) result.concurrent[s.kind] = { rows_per_s: Math.round(rate[s.kind].reduce((x, y) => x + y, 0) / rate[s.kind].length) };
  log(`concurrent: ${JSON.stringify(result.concurrent)}`);
}

// Report.
const ratio = (a, b) => (a > 0 ? `${(b / a).toFixed(2)}×` : '-');
const lines = [];
lines.push(`Measured ${new Date().toISOString().slice(0, 10)}: ${ROWS.toLocaleString('en-US')} rows (big room ${BIG.toLocaleString('en-US')}), \`node bench/archive-schema.mjs --rows ${ROWS} --batches ${BATCHES} --reps ${REPS}\`; new/old ratios, below 1 is better.`);
lines.push('', '| append (500 rows a statement) | old | new | new/old |', '|---|---|---|---|');
for (const k of ['batch_p50_ms', 'batch_p99_ms', 'us_per_row', 'cpu_us_per_row']) lines.push(`| ${k} | ${result.append.old[k]} | ${result.append.new[k]} | ${ratio(result.append.old[k], result.append.new[k])} |`);
lines.push(`| 4 writers to one archive, rows/s | ${result.concurrent.old.rows_per_s} | ${result.concurrent.new.rows_per_s} | ${ratio(result.concurrent.old.rows_per_s, result.concurrent.new.rows_per_s)} |`);
if (result.load.old) lines.push(`| bulk load then index builds, rows/s | ${result.load.old.rows_per_s} | ${result.load.new.rows_per_s} | ${ratio(result.load.old.rows_per_s, result.load.new.rows_per_s)} |`);
lines.push('', '| bytes per row | old | new |', '|---|---|---|');
const relNames = [...new Set([...Object.keys(result.sizes.old.per_row), ...Object.keys(result.sizes.new.per_row)])];
for (const n of relNames) lines.push(`| ${n} | ${result.sizes.old.per_row[n] ?? '-'} | ${result.sizes.new.per_row[n] ?? '-'} |`);
lines.push(`| **total** | ${result.sizes.old.total_per_row} | ${result.sizes.new.total_per_row} |`);
lines.push('', '| query (ArchiveStore.query, page of 50) | answer (entries/count/first) | old p50 / p99 ms | new p50 / p99 ms | new/old p50 | PostgreSQL CPU ms/query old / new |', '|---|---|---|---|---|---|');
for (const [n, q] of Object.entries(result.queries)) lines.push(`| ${n} | ${q.answer ?? ''} | ${q.old.p50_ms} / ${q.old.p99_ms} | ${q.new.p50_ms} / ${q.new.p99_ms} | ${ratio(q.old.p50_ms, q.new.p50_ms)} | ${q.old.cpu_ms ?? '-'} / ${q.new.cpu_ms ?? '-'} |`);
const text = lines.join('\n');
console.log(`\n${text}\n`);
const jsonFile = path.join(os.tmpdir(), `archive-schema-${ROWS}.json`);
fs.writeFileSync(jsonFile, JSON.stringify(result, null, 2));
log(`figures as JSON: ${jsonFile}`);
if (flag('write-docs')) {
  const file = path.join(ROOT, 'docs', 'scaling.md');
  const key = `archive-schema-${ROWS}`;
  let doc = fs.readFileSync(file, 'utf8');
  const begin = `<!-- ${key}:begin -->`, end = `<!-- ${key}:end -->`;
  const b = doc.indexOf(begin), e = doc.indexOf(end);
  const block = `${begin}\n${text}\n${end}`;
  doc = b !== -1 && e > b ? doc.slice(0, b) + block + doc.slice(e + end.length) : `${doc.trimEnd()}\n\n${block}\n`;
  fs.writeFileSync(file, doc);
  log('wrote docs/scaling.md');
}
for (const s of both) await s.db.close();
if (!flag('keep')) for (const k of Object.values(NAMES)) await admin.query(`DROP DATABASE IF EXISTS ${k}`);
await admin.end();
