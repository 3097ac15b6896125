#!/usr/bin/env node
// What the archive's schema costs PostgreSQL per one-to-one message, and what changes to it would save:
// this build's own append statement (captured from its ArchiveStore.write) on the schema as migrated
// and on variants of it, each in a database of its own on a private cluster, counted in instructions
// by a single-user backend under callgrind (bench/pg-callgrind.mjs), with the index bytes each row adds.
// The variants are measurements for planning a migration, not schemas Perch runs:
//  - collate-c: the text key columns compared bytewise (COLLATE "C") instead of by the database's collation;
//  - integer-key: the archive named by an integer (its JID kept once, elsewhere) instead of its JID text;
//  - hash-key: the indexes led by a 64-bit hash of the archive's JID; hash-key-include: with the JID in each leaf entry too;
//  - one-time-index: one (archive, stamp, id) index in place of (archive, id) and (archive, stamp), which
//    would mean paging by (stamp, id) instead of id;
//  - both of the last two.
//
//   npm run build && node bench/archive-key-variants.mjs [--prefill 300] [--statements 10] [--messages 450] [--variants a,b]
//
// Needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin) and valgrind. About a minute per variant.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { privateCluster, captureAppends, preparedScript, printParts } from './pg-callgrind.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const arg = (name, dflt) => { const i = args.indexOf(name); return i === -1 ? dflt : args[i + 1]; };
const PREFILL = Number(arg('--prefill', 300));
const STATEMENTS = Number(arg('--statements', 10));
const MESSAGES = Number(arg('--messages', 450));
const PORT = Number(arg('--port', 5498));
const log = (s) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

const TEXT_KEYS = ['archive', 'stanza_id', 'from_jid', 'real_jid'];
// archive_size reads the count tables' archive column: a column a view reads cannot change its type.
const INTEGER_KEY = ['DROP VIEW archive_size', ...['archive', 'archive_count', 'archive_count_delta'].map((t) => `ALTER TABLE ${t} ALTER COLUMN archive TYPE int USING 0`)];
const ONE_TIME_INDEX = ['DROP INDEX archive_archive_id', 'DROP INDEX archive_archive_stamp',
  'CREATE INDEX archive_archive_stamp_id ON archive (archive, stamp, id) WITH (deduplicate_items = off)'];

/** The statement as it would be with integer archive keys: the archive column's values numbered, cast to int. */
function integerKeys(numbers) {
  const number = (jid) => { let n = numbers.get(jid); if (n === undefined) numbers.set(jid, (n = numbers.size + 1)); return n; };
  return ({ sql, params }) => {
    if (!/^\s*(WITH captured AS \(.*\) )?INSERT INTO archive\b/s.test(sql)) return { sql, params };
    const packed = '(string_to_array($1, chr(1), chr(2)))[2:]::text[]';
    if (sql.includes(packed) && typeof params[0] === 'string') {
      const values = params[0].split('\u0001').slice(1).map((j) => String(number(j)));
      return { sql: sql.replace(packed, packed.replace('text[]', 'int[]')), params: [`\u0001${values.join('\u0001')}`, ...params.slice(1)] };
    }
    if (sql.includes('$1::text[]') && Array.isArray(params[0])) return { sql: sql.replace('$1::text[]', '$1::int[]'), params: [params[0].map(number), ...params.slice(1)] };
    throw new Error('the append statement no longer has the shape integer-key rewrites');
  };
}

// The archive's JID hashed to 64 bits where an index leads with it (hashtextextended, the function hash
// partitioning uses: immutable, the same on every PostgreSQL); queries would state the hash and the JID,
// so a collision costs a filtered row, never a wrong one. No table of keys, nothing in the writer. The
// unique index ends with the JID: stanza ids are unique per archive, not per hash.
const H = 'hashtextextended(archive, 0)';
const hashKey = (include) => [
  ...['archive_id', 'archive_stamp', 'archive_from_jid', 'archive_real_jid', 'archive_stanza_id'].map((i) => `DROP INDEX archive_${i}`),
  'DROP INDEX archive_tsv',
  ...[['archive_id', 'id'], ['archive_stamp', 'stamp'], ['archive_from_jid', 'from_jid, id'], ['archive_real_jid', 'real_jid, id']].map(([name, rest]) =>
    `CREATE INDEX archive_${name} ON archive ((${H}), ${rest})${include ? ' INCLUDE (archive)' : ''} WITH (deduplicate_items = off)${name === 'archive_from_jid' ? ` WHERE starts_with(from_jid, archive || '/')` : ''}`),
  `CREATE UNIQUE INDEX archive_archive_stanza_id ON archive ((${H}), stanza_id, stamp, archive)`,
  `CREATE INDEX archive_tsv ON archive USING gin ((${H}), tsv)`,
];

const ALL = [
  { name: 'current', what: 'the schema as migrated', ddl: [] },
  { name: 'collate-c', what: 'text keys compared bytewise (COLLATE "C")', ddl: TEXT_KEYS.map((c) => `ALTER TABLE archive ALTER COLUMN ${c} TYPE text COLLATE "C"`) },
  { name: 'integer-key', what: 'the archive named by an integer', ddl: INTEGER_KEY, integer: true },
  { name: 'hash-key', what: 'the archive\'s JID hashed where an index leads with it', ddl: hashKey(false) },
  // A count could then check the JID in the index (PostgreSQL does no index-only scan on an expression whose column is not in the index).
  { name: 'hash-key-include', what: 'the same, the JID included in each leaf entry', ddl: hashKey(true) },
  { name: 'one-time-index', what: '(archive, stamp, id) for (archive, id) and (archive, stamp)', ddl: ONE_TIME_INDEX },
  { name: 'integer-key+one-time-index', what: 'both', ddl: [...INTEGER_KEY, ...ONE_TIME_INDEX], integer: true },
];
const chosen = arg('--variants', null)?.split(',');
const variants = ALL.filter((v) => !chosen || chosen.includes(v.name)).map((v) => ({ ...v, db: `perch_variant_${v.name.replace(/\W/g, '_')}` }));
if (variants.length === 0) { console.error(`no such variant; variants: ${ALL.map((v) => v.name).join(', ')}`); process.exit(2); }

const { createArchiveStore } = await import(pathToFileURL(path.join(ROOT, 'dist', 'storage', 'sql-archive.js')).href);
const prefill = await captureAppends(createArchiveStore, 0, PREFILL, MESSAGES);
const measured = await captureAppends(createArchiveStore, PREFILL, STATEMENTS, MESSAGES);

const cluster = privateCluster(PORT);
try {
  log(`private cluster in ${cluster.work} (PostgreSQL ${cluster.version})`);
  for (const v of variants) {
    const { db } = await cluster.migrated(ROOT, v.db);
    for (const sql of v.ddl) await db.query(sql);
    const rewrite = v.integer ? integerKeys(new Map()) : (s) => s;
    const t0 = Date.now();
    for (const s of prefill) { const { sql, params } = rewrite(s); await db.query(sql, params); }
    await db.query('SELECT archive_count_fold()');
    await db.query('VACUUM ANALYZE');
    const [size] = await db.query(`SELECT (SELECT count(*) FROM archive) AS rows,
      (SELECT sum(pg_indexes_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'archive'::regclass) AS index_bytes`);
    v.indexBytesPerRow = Number(size.index_bytes) / Number(size.rows);
    log(`${v.name}: ${Number(size.rows).toLocaleString('en-US')} rows written in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${v.indexBytesPerRow.toFixed(0)} index bytes per row`);
    await db.close();
    v.script = path.join(cluster.work, `${v.db}.sql`);
    fs.writeFileSync(v.script, preparedScript(measured.map(rewrite)));
  }
  const msgs = STATEMENTS * MESSAGES;
  await cluster.measure(variants, msgs, log);
  const current = variants.find((v) => v.name === 'current');
  console.log(`\narchive append under callgrind, by schema: ${STATEMENTS} statements of ${MESSAGES} one-to-one messages (${2 * MESSAGES} rows) after ${(PREFILL * MESSAGES).toLocaleString('en-US')} messages; PostgreSQL ${cluster.version}`);
  console.log('| schema | instructions per message | vs current | index bytes per row |');
  console.log('|---|---|---|---|');
  for (const v of variants) console.log(`| ${v.name}: ${v.what} | ${Math.round(v.perMessage).toLocaleString('en-US')} | ${current ? `${(v.perMessage / current.perMessage).toFixed(3)}×` : '–'} | ${v.indexBytesPerRow.toFixed(0)} |`);
  printParts(variants, msgs);
} finally {
  cluster.remove(args.includes('--keep'));
}
