#!/usr/bin/env node
// The first archive read after a quiet spell, two Perch builds on the same rows in one run: each build
// opens its own PostgreSQL handle (openPostgres, as a server does) on one database holding a partitioned
// archive, warms up, then in each round every handle sits idle for --quiet-ms (default 11 s, past
// pg.Pool's default idle timeout of 10 s) and reads a room's last page of 50 with its count once.
// Reported per build: the warm p50 and the reads after a quiet spell, and PostgreSQL's backends
// opened meanwhile (a new backend is a fork, an authentication and cold catalog caches).
//
//   git worktree add /tmp/before <commit> && (cd /tmp/before && ln -s $PWD/node_modules && npm run build)
//   npm run build && node bench/pg-quiet.mjs --before /tmp/before [--rows 200000] [--rounds 6] [--quiet-ms 11000]
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, dflt) => { const i = argv.indexOf(`--${name}`); return i === -1 ? dflt : argv[i + 1]; };
const BEFORE = arg('before', null);
const ROWS = Number(arg('rows', 200_000));
const ROUNDS = Number(arg('rounds', 6));
const QUIET_MS = Number(arg('quiet-ms', 11_000));
if (!BEFORE) { console.error('usage: node bench/pg-quiet.mjs --before DIR [--rows N] [--rounds N] [--quiet-ms MS]'); process.exit(2); }
const ADMIN = process.env.ADMIN_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
const DB = `perch_quiet_${process.pid}`;
const URL = ADMIN.replace(/\/[^/]*$/, `/${DB}`);
const ROOM = 'quiet@conference.bench.local';
const log = (s) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.floor(s.length / 2)] : null; };
const r2 = (x) => Math.round(x * 100) / 100;

const admin = new pg.Client({ connectionString: ADMIN });
await admin.connect();
await admin.query(`CREATE DATABASE ${DB}`);
const builds = [];
try {
  for (const [label, root] of [['before', path.resolve(BEFORE)], ['after', ROOT]]) {
    const { openPostgres } = await import(path.join(root, 'dist/storage/db-postgres.js'));
    const { migrate } = await import(path.join(root, 'dist/storage/migrations.js'));
    const { createSqlStores } = await import(path.join(root, 'dist/storage/sql-stores.js'));
    const db = await openPostgres(URL);
    await migrate(db);
    builds.push({ label, db, archive: createSqlStores(db).archive, warm: [], quiet: [], opened: 0 });
  }
  // Six months of a room's messages, so that its reads plan over several partitions.
  const t0 = Date.parse('2026-05-01T00:00:00Z'), span = 180 * 86400_000;
  for (let i = 0; i < ROWS; i += 2000) {
    const batch = Array.from({ length: Math.min(2000, ROWS - i) }, (_, j) => {
      const n = i + j;
      return {
        archive: ROOM, stanzaId: `q-${n}`, stamp: new Date(t0 + Math.floor((n / ROWS) * span)), fromJid: `${ROOM}/n${n % 50}`, realJid: `u${n % 50}@bench.local`,
        body: `message ${n} about the quiet build`, stanza: `<message type='groupchat' id='m${n}'><body>message ${n} about the quiet build</body></message>`,
      };
    });
    await builds[1].archive.append(batch);
  }
  await admin.end();
  const a = new pg.Client({ connectionString: URL });
  await a.connect();
  await a.query('VACUUM ANALYZE');
  const backendsOpened = async () => Number((await a.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'perch'`, [DB])).rows[0].n);
  log(`${ROWS.toLocaleString('en-US')} messages in ${DB}; ${ROUNDS} rounds of ${QUIET_MS} ms quiet`);
  const read = async (b) => {
    const t = performance.now();
    const r = await b.archive.query(ROOM, { before: true, limit: 50 });
    const ms = performance.now() - t;
    if (r.entries.length !== 50 || r.count !== ROWS) throw new Error(`${b.label}: ${r.entries.length} entries, count ${r.count}`);
    return ms;
  };
  for (const b of builds) for (let i = 0; i < 40; i++) { const ms = await read(b); if (i >= 10) b.warm.push(ms); }
  for (let round = 0; round < ROUNDS; round++) {
    const pids = await a.query(`SELECT array_agg(pid) AS p FROM pg_stat_activity WHERE datname = $1 AND application_name = 'perch'`, [DB]);
    await sleep(QUIET_MS);
    // Alternating which build reads first; a read after a quiet spell, then the backends it opened.
    for (const b of round % 2 ? [...builds].reverse() : builds) {
      b.quiet.push(await read(b));
    }
    const now = await a.query(`SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'perch'`, [DB]);
    const had = new Set(pids.rows[0].p ?? []);
    log(`round ${round + 1}: ${builds.map((b) => `${b.label} ${r2(b.quiet.at(-1))} ms`).join(', ')}; backends opened since the last round: ${now.rows.filter((r) => !had.has(r.pid)).length}`);
  }
  console.log(`\n| build | warm p50 | after ${QUIET_MS / 1000} s quiet: median | max |\n|---|---|---|---|`);
  for (const b of builds) console.log(`| ${b.label} | ${r2(median(b.warm))} ms | ${r2(median(b.quiet))} ms | ${r2(Math.max(...b.quiet))} ms |`);
  const [x, y] = builds;
  console.log(`\nafter / before, median after a quiet spell: ${(median(y.quiet) / median(x.quiet)).toFixed(2)}x; connections now open: ${await backendsOpened()}`);
  await a.end();
} finally {
  for (const b of builds) await b.db.close().catch(() => {});
  const c = new pg.Client({ connectionString: ADMIN });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await c.end();
}
