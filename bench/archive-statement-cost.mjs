#!/usr/bin/env node
// PostgreSQL's CPU for an archive statement of one one-to-one message (its two rows), two Perch builds:
// what a server at a moderate rate sends, one message a batch, four lanes writing at once. Each build
// on a database of its own, migrated by that build and filled with 10,000 messages first; the builds
// alternate round by round. CPU is the database's backends' (utime + stime from /proc, by pid), over
// the statements and whatever the build's server does beside them: a build whose store has foldCounts
// folds the size deltas once a second meanwhile, as its server does (src/modules/archive-counts.ts).
//
//   npm run build && node bench/archive-statement-cost.mjs --before DIR [--statements 4000] [--rounds 3] [--compliance]
//
// --compliance: each statement a room message instead, with the compliance event that commits with it (what
// a server with compliance capture on writes for each room message: docs/compliance.md).
//
// DIR is a checkout with dist/ built (git worktree add ../wt/before <commit>, npm run build there).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, dflt) => { const i = argv.indexOf(`--${name}`); return i === -1 ? dflt : argv[i + 1]; };
const BEFORE = arg('before', null);
if (!BEFORE) { console.error('usage: node bench/archive-statement-cost.mjs --before DIR [--statements N] [--rounds N]'); process.exit(2); }
const STATEMENTS = Number(arg('statements', 4000));
const ROUNDS = Number(arg('rounds', 3));
const LANES = 4;
const COMPLIANCE = argv.includes('--compliance');
const BASE = process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/test';
const urlOf = (db) => BASE.replace(/\/[^/]*$/, `/${db}`);
const CLK_TCK = 100;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

const admin = new pg.Client({ connectionString: BASE });
await admin.connect();
/** CPU µs of every backend connected to the database. */
async function backendCpu(db) {
  const { rows } = await admin.query('SELECT pid FROM pg_stat_activity WHERE datname = $1', [db]);
  let ticks = 0;
  for (const { pid } of rows) {
    try {
      const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch { /* gone meanwhile */ }
  }
  return (ticks * 1e6) / CLK_TCK;
}

let seq = 0;
/** One one-to-one message's two archive entries (the recipient's, then the sender's), as the server makes them. */
function message() {
  const n = seq++;
  const a = `user${n % 500}@bench.local`, b = `user${(n + 250) % 500}@bench.local`;
  const body = `message ${n} of the statement cost benchmark, some words ${n % 97}`;
  const stanza = `<message xmlns="jabber:client" type="chat" from="${a}/load" to="${b}" id="m${n}"><body>${body}</body></message>`;
  const stamp = new Date();
  return [
    { archive: b, stanzaId: `r${n}`, stamp, fromJid: `${a}/load`, realJid: a, body, stanza },
    { archive: a, stanzaId: `s${n}`, stamp, fromJid: b, realJid: b, body, stanza },
  ];
}

/** A room message's archive entry and its compliance event, written in one statement. */
function roomMessage() {
  const n = seq++;
  const room = `room${n % 50}@conference.bench.local`, actor = `user${n % 20}@bench.local`;
  const body = `message ${n} of the statement cost benchmark, some words ${n % 97}`;
  const stamp = new Date();
  return [
    [{ archive: room, stanzaId: `g${n}`, stamp, fromJid: `${room}/nick${n % 20}`, realJid: actor, body, stanza: `<message xmlns="jabber:client" type="groupchat" from="${room}/nick${n % 20}" id="g${n}"><body>${body}</body></message>` }],
    [{ kind: 'chat', stamp, room, actor, nick: `nick${n % 20}`, content: body, messageId: `g${n}`, detail: null }],
  ];
}
/** One statement of the kind measured. */
const writeOne = (archive) => (COMPLIANCE ? archive.write(...roomMessage()) : archive.write(message()));

const builds = [];
for (const [name, root] of [['before', path.resolve(BEFORE)], ['after', ROOT]]) {
  const dist = root.endsWith('dist') ? root : path.join(root, 'dist');
  const db = `perch_stmt_cost_${name}_${process.pid}`;
  await admin.query(`DROP DATABASE IF EXISTS ${db}`);
  await admin.query(`CREATE DATABASE ${db}`);
  const { openPostgres } = await import(path.join(dist, 'storage/db-postgres.js'));
  const { migrate } = await import(path.join(dist, 'storage/migrations.js'));
  const { createSqlStores } = await import(path.join(dist, 'storage/sql-stores.js'));
  const conn = await openPostgres(urlOf(db));
  await migrate(conn);
  const archive = createSqlStores(conn).archive;
  for (let i = 0; i < 20; i++) await archive.write(Array.from({ length: 500 }, () => message()).flat());
  if (archive.foldCounts) await archive.foldCounts();
  await conn.query('VACUUM ANALYZE');
  builds.push({ name, db, conn, archive, cpu: [], rate: [] });
}

try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const b of round % 2 === 0 ? builds : [...builds].reverse()) {
      for (let i = 0; i < 100; i++) await writeOne(b.archive); // warm: plans, caches
      const fold = b.archive.foldCounts ? setInterval(() => void b.archive.foldCounts(), 1000) : null;
      const cpu0 = await backendCpu(b.db);
      const t0 = performance.now();
      await Promise.all(Array.from({ length: LANES }, async () => {
        for (let i = 0; i < STATEMENTS / LANES; i++) await writeOne(b.archive);
      }));
      const seconds = (performance.now() - t0) / 1000;
      if (fold) clearInterval(fold);
      const cpu = (await backendCpu(b.db)) - cpu0;
      b.cpu.push(cpu / STATEMENTS);
      b.rate.push(STATEMENTS / seconds);
      console.log(`round ${round + 1} ${b.name}: ${(STATEMENTS / seconds).toFixed(0)} statements/s, PostgreSQL ${(cpu / STATEMENTS).toFixed(0)} µs CPU per statement`);
    }
  }
  const [before, after] = builds;
  console.log(`\n${COMPLIANCE ? 'one room message and its compliance event' : 'one one-to-one message (two rows)'} a statement, ${LANES} writers, ${STATEMENTS} statements a round, ${ROUNDS} rounds; medians`);
  console.log('| build | statements/s | PostgreSQL µs CPU per statement |');
  console.log('|---|---|---|');
  for (const b of builds) console.log(`| ${b.name} | ${median(b.rate).toFixed(0)} | ${median(b.cpu).toFixed(0)} |`);
  console.log(`after / before: statements/s ${(median(after.rate) / median(before.rate)).toFixed(2)}×, PostgreSQL CPU per statement ${(median(after.cpu) / median(before.cpu)).toFixed(2)}×`);
} finally {
  for (const b of builds) {
    await b.conn.close();
    await admin.query(`DROP DATABASE IF EXISTS ${b.db}`);
  }
  await admin.end();
}
