#!/usr/bin/env node
// Export and import rates (issue 9): fills a store with room archives (default 200,000 messages in 20
// rooms of one category, 100 users), then times, in process on the built dist/ modules,
//   - exportData (level all) to a .jsonl.gz: messages/s, file size,
//   - importData into an empty store: the dry run (check + compare) and the import itself,
//   - importData of the same file again (everything already there: the dedupe path).
// Writes its section of docs/benchmarks.md between <!-- data-export:begin --> and <!-- data-export:end -->.
//
//   npm run build && node bench/data-export.mjs              PostgreSQL (postgres://root@127.0.0.1:5432)
//   node bench/data-export.mjs --pglite                      PGlite data directories instead
//   node bench/data-export.mjs --messages 20000 --no-docs    a smoke test
//
// PostgreSQL: databases perch_export_bench_<pid>_{a,b} (PERCH_BENCH_PG for another admin URL), dropped at the end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { prng, writeDocsSection } from './lib.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const opt = (name, dflt) => { const i = argv.indexOf(`--${name}`); return i === -1 ? dflt : argv[i + 1]; };

const MESSAGES = Number(opt('messages', 200_000));
const ROOMS = 20;
const USERS = 100;
const PGLITE = flag('pglite');
const ADMIN_URL = process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/postgres';
const SERVICE = 'conference.bench.local';
const DOMAIN = 'bench.local';

const { openDataStores } = await import(path.join(DIST, 'storage/open.js'));
const { exportData } = await import(path.join(DIST, 'src/data/export.js'));
const { importData } = await import(path.join(DIST, 'src/data/import.js'));
const { credentialsFor } = await import(path.join(DIST, 'src/accounts.js'));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-export-bench-'));
const dbNames = [];

async function openStore(tag) {
  if (PGLITE) return openDataStores({ databaseUrl: null, dataDir: path.join(tmp, tag) });
  const name = `perch_export_bench_${process.pid}_${tag}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  dbNames.push(name);
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  return openDataStores({ databaseUrl: u.toString(), dataDir: path.join(tmp, tag) });
}

async function dropDatabases() {
  if (dbNames.length === 0) return;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  for (const n of dbNames) await admin.query(`DROP DATABASE IF EXISTS ${n}`);
  await admin.end();
}

const WORDS = 'the desk trade book hedge risk client report plan update release review check morning meeting deploy status budget'.split(' ');

async function fill(stores) {
  const rnd = prng(9);
  const creds = await credentialsFor('bench', 4096);
  for (let i = 0; i < USERS; i++) await stores.users.create(`user${i}`, creds);
  await stores.chat.putCategory({ service: SERVICE, name: 'Bench', description: '', allowed: [`domain:${DOMAIN}`], denied: [], creators: [], invitations: false, fileUpload: true, chatHistory: true });
  for (let r = 0; r < ROOMS; r++) {
    await stores.chat.putRoom({
      service: SERVICE, room: `room${r}`, category: 'Bench', name: `Room ${r}`, description: '', privacy: 'open', type: 'normal',
      invitations: 'inherit', disabled: false, addin: null, members: null, managers: [], presenters: [], createdAt: new Date(),
    });
  }
  const t0 = Date.UTC(2026, 0, 1);
  const BATCH = 5000;
  for (let done = 0; done < MESSAGES; done += BATCH) {
    const batch = [];
    for (let i = done; i < Math.min(MESSAGES, done + BATCH); i++) {
      const room = `room${i % ROOMS}@${SERVICE}`;
      const user = Math.floor(rnd() * USERS);
      const body = Array.from({ length: 4 + Math.floor(rnd() * 16) }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(' ');
      batch.push({
        archive: room, stanzaId: `m${i}`, stamp: new Date(t0 + i * 1000), fromJid: `${room}/u${user}`, realJid: `user${user}@${DOMAIN}`,
        body, stanza: `<message xmlns="jabber:client" type="groupchat" from="${room}/u${user}" id="c${i}"><body>${body}</body></message>`, retracted: false,
      });
    }
    await stores.transfer.restoreMessages(batch);
  }
}

const seconds = (t) => (performance.now() - t) / 1000;
const log = (...a) => console.log(...a);

let a, b;
try {
  a = await openStore('a');
  b = await openStore('b');
  let t = performance.now();
  await fill(a);
  log(`filled ${MESSAGES} messages in ${seconds(t).toFixed(1)} s`);
  const file = path.join(tmp, 'bench.jsonl.gz');
  t = performance.now();
  const ex = await exportData(a, { file, level: 'all', scope: [], since: null, domain: DOMAIN, services: [SERVICE] });
  const exportS = seconds(t);
  log(`export: ${exportS.toFixed(1)} s, ${(MESSAGES / exportS).toFixed(0)} msgs/s, ${(ex.bytes / 1e6).toFixed(1)} MB`);
  const run = async (dryRun) => {
    const t1 = performance.now();
    const r = await importData(b, { file, dryRun, services: [SERVICE] });
    const s = seconds(t1);
    return { s, r };
  };
  const dry = await run(true);
  log(`dry run: ${dry.s.toFixed(1)} s, ${(MESSAGES / dry.s).toFixed(0)} msgs/s`);
  const imp = await run(false);
  log(`import: ${imp.s.toFixed(1)} s, ${(MESSAGES / imp.s).toFixed(0)} msgs/s; messages created ${imp.r.report.message?.created}`);
  const again = await run(false);
  log(`import again: ${again.s.toFixed(1)} s, ${(MESSAGES / again.s).toFixed(0)} msgs/s; messages unchanged ${again.r.report.message?.unchanged}`);
  if (imp.r.report.message?.created !== MESSAGES || again.r.report.message?.unchanged !== MESSAGES) throw new Error('message counts do not match');

  if (!flag('no-docs')) {
    const backend = PGLITE ? 'PGlite (data directories)' : 'PostgreSQL 15 on loopback';
    const row = (what, s) => `| ${what} | ${s.toFixed(1)} s | ${Math.round(MESSAGES / s).toLocaleString('en-US')} |`;
    const text = `<!-- data-export:begin -->
## Export and import (bench/data-export.mjs)

${MESSAGES.toLocaleString('en-US')} archived messages in ${ROOMS} rooms of one category (bodies of 4–19 words, stanzas ≈ 200 bytes), ${USERS} users; ${backend}; ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, Node ${process.version}; in process on \`dist/\`. The file (level all, gzip): ${(ex.bytes / 1e6).toFixed(1)} MB.

| step | time | messages/s |
|---|---|---|
${row('export (level all) to .jsonl.gz', exportS)}
${row('import --dry-run into an empty store (check + compare)', dry.s)}
${row('import into an empty store (check + write)', imp.s)}
${row('import again (every message already there)', again.s)}

\`node bench/data-export.mjs${PGLITE ? ' --pglite' : ''}${MESSAGES !== 200_000 ? ` --messages ${MESSAGES}` : ''}\`, run by hand (${new Date().toISOString().slice(0, 10)}).
<!-- data-export:end -->`;
    writeDocsSection(ROOT, text, 'data-export', 'bench/data-export.mjs', log);
  }
} finally {
  await a?.db.close();
  await b?.db.close();
  await dropDatabases();
  fs.rmSync(tmp, { recursive: true, force: true });
}
