// A private PostgreSQL cluster whose single-user backends run under valgrind's callgrind: instructions,
// not seconds, for the archive append (bench/archive-instructions.mjs: two builds; bench/archive-key-variants.mjs:
// schema variants). Counts repeat for the same binary, inputs and settings, whatever else the machine does.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chatCopies } from './lib.mjs';

const DOMAIN = 'bench.local';

/** The newest PostgreSQL server binaries under /usr/lib/postgresql/N/bin. */
export function pgBinDir() {
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base) ? fs.readdirSync(base).sort((a, b) => Number(b) - Number(a)) : [];
  const found = versions.map((v) => path.join(base, v, 'bin')).find((d) => fs.existsSync(path.join(d, 'postgres')));
  if (!found) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql/*/bin');
  return found;
}

/**
 * Makes and starts a cluster in a temporary directory (owned by the postgres user when this runs as
 * root: PostgreSQL refuses root). stop() then lets instructions() run single-user backends on it.
 */
export function privateCluster(port) {
  const binDir = pgBinDir();
  const asRoot = process.getuid?.() === 0;
  const run = (cmd, argv, opts = {}) => {
    const full = path.join(binDir, cmd);
    const [file, list] = asRoot ? ['runuser', ['-u', 'postgres', '--', full, ...argv]] : [full, argv];
    return spawnSync(file, list, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
  };
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-instr-'));
  fs.chmodSync(work, 0o777);
  const data = path.join(work, 'data');
  const settings = ['-c', 'fsync=off', '-c', 'autovacuum=off', '-c', 'full_page_writes=on'];
  let r = run('initdb', ['-D', data, '-A', 'trust', '-U', 'root', '--locale=C.UTF-8']);
  if (r.status !== 0) throw new Error(`initdb: ${r.stderr}`);
  r = run('pg_ctl', ['-D', data, '-o', `-p ${port} -k ${work} ${settings.join(' ')}`, '-l', path.join(work, 'log'), '-w', 'start']);
  if (r.status !== 0) throw new Error(`pg_ctl start: ${r.stderr}${fs.readFileSync(path.join(work, 'log'), 'utf8')}`);
  const url = (db) => `postgres://root@localhost:${port}/${db}?host=${encodeURIComponent(work)}`;
  let admin = null;
  return {
    work,
    version: path.basename(path.dirname(binDir)),
    url,
    /**
     * A new database `name` migrated by the build at `root` (its dist/), and that build's storage:
     * { db (opened by its openPostgres), createArchiveStore }.
     */
    async migrated(root, name) {
      const load = (f) => import(pathToFileURL(path.join(root, 'dist', 'storage', f)).href);
      const [{ openPostgres }, { migrate }, { createArchiveStore }] = await Promise.all([load('db-postgres.js'), load('migrations.js'), load('sql-archive.js')]);
      if (!admin) {
        const { default: pg } = await import('pg');
        admin = new pg.Client({ connectionString: url('postgres') });
        await admin.connect();
      }
      await admin.query(`CREATE DATABASE ${name}`);
      const db = await openPostgres(url(name));
      await migrate(db);
      return { db, createArchiveStore };
    },
    stop() {
      const s = run('pg_ctl', ['-D', data, '-w', 'stop']);
      if (s.status !== 0) throw new Error(`pg_ctl stop: ${s.stderr}`);
    },
    /** Instructions a single-user backend runs for `script` on database `db` (the callgrind file kept as out). */
    instructions(db, script, out) {
      fs.chmodSync(work, 0o777);
      const full = ['--tool=callgrind', `--callgrind-out-file=${out}`, path.join(binDir, 'postgres'), '--single', '-D', data, ...settings, db];
      const v = asRoot
        ? spawnSync('runuser', ['-u', 'postgres', '--', 'valgrind', ...full], { input: fs.readFileSync(script), encoding: 'utf8', maxBuffer: 1 << 28 })
        : spawnSync('valgrind', full, { input: fs.readFileSync(script), encoding: 'utf8', maxBuffer: 1 << 28 });
      const m = /Collected : (\d+)/.exec(v.stderr);
      if (!m) throw new Error(`callgrind on ${db}: ${v.stderr.slice(-2000)}`);
      if (/ERROR:/.test(v.stdout + v.stderr)) throw new Error(`${db}: ${(v.stdout + v.stderr).split('\n').filter((l) => /ERROR/.test(l)).slice(0, 3).join('\n')}`);
      return Number(m[1]);
    },
    /**
     * Stops the cluster (a checkpoint first) and counts each item's script ({ name, db, script }) under callgrind, per message,
     * the backend's start and stop (an empty script on the same database) taken off: sets item.out (the
     * callgrind file), item.total and item.perMessage.
     */
    async measure(items, messages, log) {
      if (admin) {
        await admin.query('CHECKPOINT');
        await admin.end();
        admin = null;
      }
      this.stop();
      const empty = path.join(work, 'empty.sql');
      fs.writeFileSync(empty, 'SELECT 1;\n');
      for (const item of items) {
        const base = this.instructions(item.db, empty, path.join(work, `cg.${item.db}.empty`));
        item.out = path.join(work, `cg.${item.db}`);
        item.total = this.instructions(item.db, item.script, item.out);
        item.perMessage = (item.total - base) / messages;
        log(`${item.name}: ${Math.round(item.perMessage).toLocaleString('en-US')} instructions per message (${item.total.toLocaleString('en-US')} in all, start and stop ${base.toLocaleString('en-US')})`);
      }
    },
    /** Stops whatever still runs and removes the directory. */
    remove(keep = false) {
      admin?.end().catch(() => {});
      run('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
      if (!keep) fs.rmSync(work, { recursive: true, force: true });
    },
  };
}

// Stamps from the start of this quarter, one a millisecond: every row in the current partition.
const QUARTER = (() => { const d = new Date(); return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - (d.getUTCMonth() % 3), 1); })();

/** One statement's entries: `messages` one-to-one messages from message `first` on, two copies each. */
export function chatBatch(first, messages) {
  const entries = [];
  for (let m = 0; m < messages; m++) entries.push(...chatCopies(first + m, DOMAIN, new Date(QUARTER + first + m)));
  return entries;
}

/** A PostgreSQL literal of a parameter as node-postgres sends it (arrays in their text form). */
export function literal(v) {
  if (v === null || v === undefined) return 'NULL';
  const text = Array.isArray(v)
    ? `{${v.map((x) => (x === null ? 'NULL' : `"${String(x instanceof Date ? x.toISOString() : x).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`)).join(',')}}`
    : String(v instanceof Date ? v.toISOString() : v);
  return `'${text.replace(/'/g, "''")}'`;
}

/**
 * The statements an archive store (sql-archive.js's createArchiveStore) makes to append `count`
 * batches from batch `from` on, captured by a database that records instead of running them.
 */
export async function captureAppends(createArchiveStore, from, count, messages, db = null) {
  const captured = [];
  // With the build's migrated database, what the store reads before its append (the archive's key
  // mode, its keys) is answered there, and only the append is captured.
  const append = /^(WITH captured AS \(.*?\) )?INSERT INTO archive \(/s;
  const recorder = {
    kind: 'postgres',
    query: async (sql, params) => {
      if (db && !append.test(sql)) return db.query(sql, params);
      captured.push({ sql, params });
      return [];
    },
    transaction: async (fn) => fn(recorder),
  };
  const rec = createArchiveStore(recorder, 'simple');
  for (let s = from; s < from + count; s++) {
    const batch = chatBatch(s * messages, messages);
    await (rec.write ? rec.write(batch) : rec.append(batch).catch(() => {}));
  }
  return captured;
}

/** A psql-style script of captured statements, each shape prepared once (as a pooled connection does). */
export function preparedScript(captured) {
  const lines = ['SELECT setseed(0.25);'];
  const shapes = new Map();
  for (const { sql, params } of captured) {
    const flat = sql.replace(/\s+/g, ' ');
    if (!shapes.has(flat)) { shapes.set(flat, `s${shapes.size}`); lines.push(`PREPARE ${shapes.get(flat)} AS ${flat};`); }
    lines.push(`EXECUTE ${shapes.get(flat)}(${params.map(literal).join(', ')});`);
  }
  return `${lines.join('\n')}\n`;
}

/** Where an append's instructions go: functions counted inclusively, and what each stands for. */
export const APPEND_PARTS = [
  ['ExecInsertIndexTuples', 'index entries (all indexes)'], ['btinsert', 'B-tree inserts'], ['_bt_dedup_pass', 'B-tree deduplication passes'],
  ['_bt_findsplitloc', 'B-tree page splits (split point)'], ['varstr_cmp', 'text comparisons'], ['gininsert', 'GIN inserts'], ['to_tsvector_byid', 'to_tsvector'],
  ['heap_insert', 'heap inserts'], ['AfterTriggerEndQuery', 'statement triggers (counts)'], ['ExecBRInsertTriggers', 'row triggers (tsv fill)'],
  ['array_in', 'parameters\' array parsing'], ['XLogInsert', 'WAL records'],
];

/** Prints where each measured item's instructions go (APPEND_PARTS, inclusive, per message), one column an item. */
export function printParts(items, messages) {
  const maps = items.map((item) => inclusiveCounts(item.out));
  console.log(`\n| part (inclusive), per message | ${items.map((item) => item.name).join(' | ')} |`);
  console.log(`|---|${items.map(() => '---').join('|')}|`);
  for (const [fn, what] of APPEND_PARTS) {
    const cells = maps.map((m) => (m.has(fn) ? Math.round(m.get(fn) / messages).toLocaleString('en-US') : '–'));
    if (cells.some((c) => c !== '–')) console.log(`| ${what} (\`${fn}\`) | ${cells.join(' | ')} |`);
  }
}

/** Inclusive instruction counts per function of a callgrind file. */
export function inclusiveCounts(file) {
  const text = execFileSync('callgrind_annotate', ['--inclusive=yes', '--threshold=100', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const m = new Map();
  for (const line of text.split('\n')) {
    const r = /^\s*([\d,]+) \(\s*[\d.]+%\)\s+\S*?:([A-Za-z_][\w]*)(?:'\d+)? /.exec(line);
    if (r && !m.has(r[2])) m.set(r[2], Number(r[1].replace(/,/g, '')));
  }
  return m;
}
