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
// and stop, measured on an empty script, taken off) and where they go (the statement's parts, inclusive). The count trigger's fold (random() < 0.05) runs on a fixed seed.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chatCopies } from './lib.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const arg = (name, dflt) => { const i = args.indexOf(name); return i === -1 ? dflt : args[i + 1]; };
const BEFORE = arg('--before', null);
if (!BEFORE) { console.error('usage: node bench/archive-instructions.mjs --before DIR [--prefill N] [--statements N] [--messages N]'); process.exit(2); }
const PREFILL = Number(arg('--prefill', 300));
const STATEMENTS = Number(arg('--statements', 10));
const MESSAGES = Number(arg('--messages', 450));
const PORT = Number(arg('--port', 5497));
const DOMAIN = 'bench.local';
const log = (s) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

const binDir = (() => {
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base) ? fs.readdirSync(base).sort((a, b) => Number(b) - Number(a)) : [];
  const found = versions.map((v) => path.join(base, v, 'bin')).find((d) => fs.existsSync(path.join(d, 'postgres')));
  if (!found) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql/*/bin');
  return found;
})();
const asRoot = process.getuid?.() === 0;
/** Runs a PostgreSQL binary as a user it accepts (not root). */
function pgRun(cmd, argv, opts = {}) {
  const full = path.join(binDir, cmd);
  const [file, list] = asRoot ? ['runuser', ['-u', 'postgres', '--', full, ...argv]] : [full, argv];
  return spawnSync(file, list, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-instr-'));
fs.chmodSync(work, 0o777);
const data = path.join(work, 'data');
const settings = ['-c', 'fsync=off', '-c', 'autovacuum=off', '-c', 'full_page_writes=on'];

// Stamps from the start of this quarter, one a millisecond: every row in the current partition, the same for both builds.
const QUARTER = (() => { const d = new Date(); return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - (d.getUTCMonth() % 3), 1); })();
/** One statement's entries: MESSAGES one-to-one messages from message `first` on, two copies each. */
function batch(first) {
  const entries = [];
  for (let m = 0; m < MESSAGES; m++) entries.push(...chatCopies(first + m, DOMAIN, new Date(QUARTER + first + m)));
  return entries;
}

/** A PostgreSQL literal of a parameter as node-postgres sends it (arrays in their text form). */
function literal(v) {
  if (v === null || v === undefined) return 'NULL';
  const text = Array.isArray(v)
    ? `{${v.map((x) => (x === null ? 'NULL' : `"${String(x instanceof Date ? x.toISOString() : x).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`)).join(',')}}`
    : String(v instanceof Date ? v.toISOString() : v);
  return `'${text.replace(/'/g, "''")}'`;
}

const builds = [['before', path.resolve(BEFORE)], ['after', ROOT]].map(([name, root]) => ({ name, root, db: `perch_instr_${name}` }));
try {
  log(`private cluster in ${work} (${binDir})`);
  let r = pgRun('initdb', ['-D', data, '-A', 'trust', '-U', 'root', '--locale=C.UTF-8']);
  if (r.status !== 0) throw new Error(`initdb: ${r.stderr}`);
  r = pgRun('pg_ctl', ['-D', data, '-o', `-p ${PORT} -k ${work} ${settings.join(' ')}`, '-l', path.join(work, 'log'), '-w', 'start']);
  if (r.status !== 0) throw new Error(`pg_ctl start: ${r.stderr}${fs.readFileSync(path.join(work, 'log'), 'utf8')}`);
  const url = (db) => `postgres://root@localhost:${PORT}/${db}?host=${encodeURIComponent(work)}`;
  const { default: pg } = await import('pg');
  const admin = new pg.Client({ connectionString: url('postgres') });
  await admin.connect();
  for (const b of builds) {
    const load = (f) => import(pathToFileURL(path.join(b.root, 'dist', 'storage', f)).href);
    const [{ openPostgres }, { migrate }, { createArchiveStore }] = await Promise.all([load('db-postgres.js'), load('migrations.js'), load('sql-archive.js')]);
    await admin.query(`CREATE DATABASE ${b.db}`);
    const db = await openPostgres(url(b.db));
    await migrate(db);
    const store = createArchiveStore(db, 'simple');
    const write = store.write ? (e) => store.write(e) : (e) => store.append(e);
    const t0 = Date.now();
    for (let s = 0; s < PREFILL; s++) await write(batch(s * MESSAGES));
    // No count deltas waiting: the measured statements' folds (seeded) then do the same work in both builds.
    await db.query('SELECT archive_count_fold()');
    await db.query('VACUUM ANALYZE');
    log(`${b.name}: ${b.db} migrated, ${(PREFILL * MESSAGES).toLocaleString('en-US')} messages written in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await db.close?.();
    // The measured statements, as this build's store makes them: captured by a database that records.
    const captured = [];
    const recorder = { kind: 'postgres', query: async (sql, params) => { captured.push({ sql, params }); return []; }, transaction: async (fn) => fn(recorder) };
    const rec = createArchiveStore(recorder, 'simple');
    for (let s = 0; s < STATEMENTS; s++) await (rec.write ? rec.write(batch((PREFILL + s) * MESSAGES)) : rec.append(batch((PREFILL + s) * MESSAGES)).catch(() => {}));
    const lines = ['SELECT setseed(0.25);'];
    const shapes = new Map();
    for (const { sql, params } of captured) {
      const flat = sql.replace(/\s+/g, ' ');
      if (!shapes.has(flat)) { shapes.set(flat, `s${shapes.size}`); lines.push(`PREPARE ${shapes.get(flat)} AS ${flat};`); }
      lines.push(`EXECUTE ${shapes.get(flat)}(${params.map(literal).join(', ')});`);
    }
    b.script = path.join(work, `${b.name}.sql`);
    fs.writeFileSync(b.script, `${lines.join('\n')}\n`);
  }
  await admin.query('CHECKPOINT');
  await admin.end();
  r = pgRun('pg_ctl', ['-D', data, '-w', 'stop']);
  if (r.status !== 0) throw new Error(`pg_ctl stop: ${r.stderr}`);

  const empty = path.join(work, 'empty.sql');
  fs.writeFileSync(empty, 'SELECT 1;\n');
  fs.chmodSync(work, 0o777);
  /** Instructions a single-user backend runs for `script` on database `db` (the callgrind file kept as out). */
  const instructions = (db, script, out) => {
    const full = ['--tool=callgrind', `--callgrind-out-file=${out}`, path.join(binDir, 'postgres'), '--single', '-D', data, ...settings, db];
    const run = asRoot
      ? spawnSync('runuser', ['-u', 'postgres', '--', 'valgrind', ...full], { input: fs.readFileSync(script), encoding: 'utf8', maxBuffer: 1 << 28 })
      : spawnSync('valgrind', full, { input: fs.readFileSync(script), encoding: 'utf8', maxBuffer: 1 << 28 });
    const m = /Collected : (\d+)/.exec(run.stderr);
    if (!m) throw new Error(`callgrind on ${db}: ${run.stderr.slice(-2000)}`);
    if (/ERROR:/.test(run.stdout + run.stderr)) throw new Error(`${db}: ${(run.stdout + run.stderr).split('\n').filter((l) => /ERROR/.test(l)).slice(0, 3).join('\n')}`);
    return Number(m[1]);
  };
  const msgs = STATEMENTS * MESSAGES;
  for (const b of builds) {
    const base = instructions(b.db, empty, path.join(work, `cg.${b.name}.empty`));
    b.out = path.join(work, `cg.${b.name}`);
    b.total = instructions(b.db, b.script, b.out);
    b.perMessage = (b.total - base) / msgs;
    log(`${b.name}: ${b.total.toLocaleString('en-US')} instructions (start and stop ${base.toLocaleString('en-US')})`);
  }
  console.log(`\narchive append under callgrind: ${STATEMENTS} statements of ${MESSAGES} one-to-one messages (${2 * MESSAGES} rows) after ${(PREFILL * MESSAGES).toLocaleString('en-US')} messages; PostgreSQL ${path.basename(path.dirname(binDir))}`);
  console.log('| build | instructions per message | total |');
  console.log('|---|---|---|');
  for (const b of builds) console.log(`| ${b.name} | ${Math.round(b.perMessage).toLocaleString('en-US')} | ${b.total.toLocaleString('en-US')} |`);
  console.log(`after / before: ${(builds[1].perMessage / builds[0].perMessage).toFixed(3)}×`);
  // Where the instructions go: inclusive counts of the statement's parts, per message, both builds.
  const parts = [
    ['ExecInsertIndexTuples', 'index entries (all indexes)'], ['btinsert', 'B-tree inserts'], ['_bt_dedup_pass', 'B-tree deduplication passes'],
    ['_bt_findsplitloc', 'B-tree page splits (split point)'], ['gininsert', 'GIN inserts'], ['to_tsvector_byid', 'to_tsvector'],
    ['heap_insert', 'heap inserts'], ['AfterTriggerEndQuery', 'statement triggers (counts)'], ['ExecBRInsertTriggers', 'row triggers (tsv fill)'],
    ['array_in', 'parameters\' array parsing'], ['XLogInsert', 'WAL records'],
  ];
  const inclusive = (file) => {
    const text = execFileSync('callgrind_annotate', ['--inclusive=yes', '--threshold=100', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
    const m = new Map();
    for (const line of text.split('\n')) {
      const r = /^\s*([\d,]+) \(\s*[\d.]+%\)\s+\S*?:([A-Za-z_][\w]*)(?:'\d+)? /.exec(line);
      if (r && !m.has(r[2])) m.set(r[2], Number(r[1].replace(/,/g, '')));
    }
    return m;
  };
  const maps = builds.map((b) => inclusive(b.out));
  console.log('\n| part (inclusive) | before per message | after per message |');
  console.log('|---|---|---|');
  for (const [fn, what] of parts) {
    const cells = maps.map((m) => (m.has(fn) ? Math.round(m.get(fn) / msgs).toLocaleString('en-US') : '–'));
    if (cells.some((c) => c !== '–')) console.log(`| ${what} (\`${fn}\`) | ${cells.join(' | ')} |`);
  }
} finally {
  pgRun('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
  if (!args.includes('--keep')) fs.rmSync(work, { recursive: true, force: true });
}
