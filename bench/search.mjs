#!/usr/bin/env node
// Search inside a room and across the rooms of a governed MUC service (docs/persistent-chat.md "Search"),
// timed over real XMPP sockets against a real Perch process on PostgreSQL. Seeds a database straight into
// the tables (no XMPP ingest): 10 categories (one with history off), 1,000 rooms × 1,000 messages and one
// room of 1,000,000 messages, all in one time-ordered stream (row ids follow time, rooms interleaved);
// bodies of 4–24 words drawn from bench/archive-load.mjs's vocabulary with a Zipf distribution (s = 1.07),
// the marker words 'zanzibar' (1 message in 1,000) and 'kingfisher' (1 in 100); 50 senders with skewed
// shares. The probe user reads open rooms, and closed and secret rooms it is a member of, except disabled
// rooms and the category without history. Then, for each kind of query, one untimed warm-up and --reps
// timed queries (IQ sent → IQ result received, every result message before it), each reply checked.
// Writes its section of docs/benchmarks.md between <!-- search:begin --> and <!-- search:end -->.
//
//   npm run build && node bench/search.mjs                 seed (≈ 3 min) + measure; keeps the database
//   node bench/search.mjs --reps 50 --no-docs              a quicker look
//   --db NAME      database (default perch_bench_search; reused when already seeded at this size)
//   --reseed       drop and seed again     --scale F    rooms, messages and the big room × F
//
// Connection code is xmppbench's (lib/client.mjs, lib/stats.mjs), found in XMPPBENCH_DIR (default ../shared/bench).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { waitPort, portFree, prng, writeDocsSection, perchNodeFlags } from './lib.mjs';
import { VOCABULARY, FT_RARE, FT_COMMON, SENDERS } from './archive-load.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const DIST = path.join(ROOT, 'dist');
const XB = process.env.XMPPBENCH_DIR ?? path.resolve(ROOT, '..', 'shared', 'bench');
const { XmppClient, nowMs } = await import(pathToFileURL(path.join(XB, 'lib', 'client.mjs')).href);
const { summarizeArr } = await import(pathToFileURL(path.join(XB, 'lib', 'stats.mjs')).href);
const { esc } = await import(pathToFileURL(path.join(XB, 'lib', 'xml.mjs')).href);
const pg = (await import('pg')).default;

const { values: A } = parseArgs({
  options: {
    db: { type: 'string', default: 'perch_bench_search' },
    reseed: { type: 'boolean', default: false },
    scale: { type: 'string', default: '1' },
    reps: { type: 'string', default: '100' },
    port: { type: 'string', default: '29622' },
    'no-docs': { type: 'boolean', default: false },
  },
});
const SCALE = Number(A.scale);
const ROOMS = Math.round(1000 * SCALE);
const PER_ROOM = Math.round(1000 * SCALE);
const BIG = Math.round(1_000_000 * SCALE);
const CATEGORIES = 10;
const REPS = Number(A.reps);
const PORT = Number(A.port);
const DOMAIN = 'bench.local';
const SERVICE = `conference.${DOMAIN}`;
const PROBE = `probe@${DOMAIN}`;
const BIG_ROOM = 'big';
const PG_ADMIN_URL = process.env.PERCH_BENCH_PG ?? 'postgres://root@127.0.0.1:5432/test';
const pgUrl = (db) => PG_ADMIN_URL.replace(/\/[^/]*$/, `/${db}`);
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'perch-search-bench-'));
const log = (s) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
const r1 = (x) => (x === null || x === undefined ? '–' : (Math.round(x * 10) / 10).toFixed(1));
const roomName = (r) => `r${String(r).padStart(4, '0')}`;
const catName = (c) => `cat-${c}`;
/** Room r's settings: privacy by r % 10 (6 open, 3 closed, 1 secret), category r % 10, probe a member of half the closed/secret ones, 1 in 50 disabled. */
const roomShape = (r) => ({
  privacy: r % 10 < 6 ? 'open' : r % 10 < 9 ? 'closed' : 'secret',
  category: catName(Math.floor(r / 7) % CATEGORIES),
  member: r % 20 >= 10,
  disabled: r % 50 === 17,
});
const HISTORY_OFF = catName(CATEGORIES - 1);
/** The category of a room JID of the seed. */
const categoryOf = (jid) => (jid.startsWith(`${BIG_ROOM}@`) ? catName(0) : roomShape(Number(jid.slice(1, jid.indexOf('@')))).category);

async function admin(sql) {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try { return await c.query(sql); } finally { await c.end(); }
}

// ------------------------------------------------------------------------------------------------
// seed

/** Zipf over the vocabulary: rank k (1-based) with weight 1 / k^1.07; returns a sampler. */
function zipf(rnd, n, s = 1.07) {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) { sum += 1 / Math.pow(k + 1, s); cdf[k] = sum; }
  return () => {
    const x = rnd() * sum;
    let lo = 0, hi = n - 1;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (cdf[mid] < x) lo = mid + 1; else hi = mid; }
    return lo;
  };
}

async function seeded(c) {
  try {
    const r = await c.query(`SELECT (SELECT count(*) FROM chat_rooms)::int AS rooms, (SELECT COALESCE(sum(n), 0)::bigint FROM archive_count) AS rows`);
    return r.rows[0].rooms === ROOMS + 1 && Number(r.rows[0].rows) === ROOMS * PER_ROOM + BIG;
  } catch { return false; }
}

async function seed() {
  const exists = (await admin(`SELECT 1 FROM pg_database WHERE datname = '${A.db}'`)).rowCount > 0;
  if (exists && !A.reseed) {
    const c = new pg.Client({ connectionString: pgUrl(A.db) });
    await c.connect();
    const ok = await seeded(c);
    await c.end();
    if (ok) { log(`reusing database ${A.db}`); return { reused: true }; }
  }
  if (exists) await admin(`DROP DATABASE ${A.db} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${A.db}`);
  const { openDataStores } = await import(path.join(DIST, 'storage/open.js'));
  const { addUser } = await import(path.join(DIST, 'src/accounts.js'));
  const stores = await openDataStores({ databaseUrl: pgUrl(A.db), dataDir: null });
  for (const u of ['probe', ...Array.from({ length: SENDERS }, (_, k) => `user${k + 1}`)]) await addUser(stores, DOMAIN, u, 'bench-pw', 4096);
  await stores.db.close();

  const c = new pg.Client({ connectionString: pgUrl(A.db) });
  await c.connect();
  const t0 = nowMs();
  await c.query('SET synchronous_commit = off');
  await c.query("SET maintenance_work_mem = '512MB'");
  await c.query(`INSERT INTO chat_categories (service, name, lname, chat_history)
    SELECT '${SERVICE}', 'cat-' || c, 'cat-' || c, c <> ${CATEGORIES - 1} FROM generate_series(0, ${CATEGORIES - 1}) c`);
  await c.query(`INSERT INTO chat_acl (service, object_kind, object_name, list, principal)
    SELECT '${SERVICE}', 'category', 'cat-' || c, 'allowed', 'domain:${DOMAIN}' FROM generate_series(0, ${CATEGORIES - 1}) c`);
  const rooms = Array.from({ length: ROOMS }, (_, r) => ({ room: roomName(r), ...roomShape(r) }));
  rooms.push({ room: BIG_ROOM, privacy: 'open', category: catName(0), member: false, disabled: false });
  await c.query(`INSERT INTO chat_rooms (service, room, category, name, lname, privacy, disabled, members_inherit)
    SELECT '${SERVICE}', r, c, r, r, p, d, p = 'open' FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[]) AS t(r, c, p, d)`,
    [rooms.map((r) => r.room), rooms.map((r) => r.category), rooms.map((r) => r.privacy), rooms.map((r) => r.disabled)]);
  // Closed and secret rooms: the senders are members; the probe in half of them.
  const acl = [];
  for (const r of rooms) {
    if (r.privacy === 'open') continue;
    acl.push([r.room, `user1@${DOMAIN}`]);
    if (r.member) acl.push([r.room, PROBE]);
  }
  await c.query(`INSERT INTO chat_acl (service, object_kind, object_name, list, principal)
    SELECT '${SERVICE}', 'room', r, 'members', p FROM unnest($1::text[], $2::text[]) AS t(r, p)`, [acl.map((a) => a[0]), acl.map((a) => a[1])]);
  await c.query(`INSERT INTO rooms (service, name, config) SELECT '${SERVICE}', r, jsonb_build_object('persistent', true, 'public', p <> 'secret', 'membersOnly', p <> 'open', 'name', r)
    FROM unnest($1::text[], $2::text[]) AS t(r, p)`, [rooms.map((r) => r.room), rooms.map((r) => r.privacy)]);

  // The archive: one time-ordered stream of every room's messages, rooms shuffled together.
  const rnd = prng(20261205);
  const word = zipf(rnd, VOCABULARY.length);
  const total = ROOMS * PER_ROOM + BIG;
  const order = new Int32Array(total);
  for (let i = 0; i < total; i++) order[i] = i < BIG ? ROOMS : Math.floor((i - BIG) / PER_ROOM);
  for (let i = total - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); const t = order[i]; order[i] = order[j]; order[j] = t; }
  const endS = Math.floor(Date.now() / 1000) - 600;
  const startS = endS - total; // one message a second on average
  const BATCH = 10_000;
  let stampS = startS;
  for (let b = 0; b < total; b += BATCH) {
    const cols = [[], [], [], [], [], [], []];
    for (let i = b; i < Math.min(total, b + BATCH); i++) {
      const room = order[i] === ROOMS ? BIG_ROOM : roomName(order[i]);
      const jid = `${room}@${SERVICE}`;
      const len = 4 + Math.floor(rnd() * 21);
      const words = Array.from({ length: len }, () => VOCABULARY[word()]);
      if (i % FT_RARE.every === FT_RARE.offset) words[Math.floor(rnd() * len)] = FT_RARE.word;
      if (i % FT_COMMON.every === FT_COMMON.offset) words[Math.floor(rnd() * len)] = FT_COMMON.word;
      words[0] = words[0][0].toUpperCase() + words[0].slice(1);
      const body = words.join(' ');
      const k = Math.min(SENDERS - 1, Math.floor(SENDERS * rnd() * rnd() * 1.6));
      const sid = crypto.randomUUID();
      stampS += rnd() < 0.5 ? 1 : 0;
      const from = `${jid}/b${k}`;
      cols[0].push(jid); cols[1].push(sid); cols[2].push(new Date(stampS * 1000).toISOString()); cols[3].push(from);
      cols[4].push(`user${k + 1}@${DOMAIN}`); cols[5].push(body);
      cols[6].push(`<message xmlns="jabber:client" from="${from}" type="groupchat" id="m${i}"><body>${esc(body)}</body><stanza-id xmlns="urn:xmpp:sid:0" id="${sid}" by="${jid}"/></message>`);
    }
    await c.query(`INSERT INTO archive (archive, stanza_id, stamp, from_jid, real_jid, body, stanza, tsv)
      SELECT a, s, t, f, r, b, x, archive_tsv(b)
      FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u(a, s, t, f, r, b, x)`, cols);
    if ((b / BATCH) % 20 === 0) log(`  seeded ${b + BATCH} of ${total} messages`);
  }
  const insertS = (nowMs() - t0) / 1000;
  const v0 = nowMs();
  await c.query('VACUUM ANALYZE');
  const vacuumS = (nowMs() - v0) / 1000;
  const size = Number((await c.query('SELECT pg_database_size(current_database()) AS n')).rows[0].n);
  await c.end();
  log(`seeded ${total} messages in ${insertS.toFixed(0)} s, VACUUM ANALYZE ${vacuumS.toFixed(0)} s, ${(size / 2 ** 30).toFixed(1)} GiB`);
  return { insertS, vacuumS, sizeGiB: size / 2 ** 30 };
}

/** What the probe may read (the rules of src/pchat/access.ts applied to the seed), and a few facts the checks use. */
async function facts() {
  const c = new pg.Client({ connectionString: pgUrl(A.db) });
  await c.connect();
  try {
    const readable = [];
    for (let r = 0; r < ROOMS; r++) {
      const s = roomShape(r);
      if (s.disabled || s.category === HISTORY_OFF || (s.privacy !== 'open' && !s.member)) continue;
      readable.push(`${roomName(r)}@${SERVICE}`);
    }
    readable.push(`${BIG_ROOM}@${SERVICE}`);
    const bigStamps = (await c.query(`SELECT min(stamp) AS a, max(stamp) AS b FROM archive WHERE archive = $1`, [`${BIG_ROOM}@${SERVICE}`])).rows[0];
    return { readable, from: new Date(bigStamps.a), to: new Date(bigStamps.b) };
  } finally { await c.end(); }
}

// ------------------------------------------------------------------------------------------------
// the server and the queries

async function startServer() {
  if (!(await portFree(PORT))) throw new Error(`port ${PORT} is busy`);
  const config = path.join(WORK, 'perch.json');
  fs.writeFileSync(config, JSON.stringify({
    domain: DOMAIN, dataDir: path.join(WORK, 'data'), logLevel: 'warn', databaseUrl: pgUrl(A.db),
    listen: { c2s: { host: '127.0.0.1', port: PORT }, c2sDirectTls: null, component: null, metrics: null, upload: null },
    tls: { requireStartTls: false },
  }, null, 2));
  const proc = spawn(process.execPath, [...perchNodeFlags(DIST), path.join(DIST, 'src/cli.js'), '--config', config, 'start'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((r) => proc.once('exit', r));
  await Promise.race([waitPort(PORT, 120000), exited.then((code) => { throw new Error(`perch exited with ${code}`); })]);
  return { proc, async stop() { proc.kill('SIGTERM'); await exited; } };
}

const F = (name) => `{urn:x-perch:search:0}${name}`;
function form(fields) {
  let s = `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>`;
  for (const [k, v] of Object.entries(fields)) s += `<field var='${esc(k)}'>${(Array.isArray(v) ? v : [v]).map((x) => `<value>${esc(x)}</value>`).join('')}</field>`;
  return s + '</x>';
}

let qn = 0;
async function query(c, to, fields, { max = 50, after = null } = {}) {
  const qid = `q${++qn}`;
  const items = [];
  c.onMessage = (el) => {
    const res = el.getChild('result', 'urn:xmpp:mam:2');
    if (!res || res.attrs.queryid !== qid) return;
    const msg = res.getChild('forwarded', 'urn:xmpp:forward:0')?.getChild('message');
    items.push({ room: (msg?.attrs.from ?? '').split('/')[0], nick: (msg?.attrs.from ?? '').split('/')[1], body: msg?.getChildText('body') ?? '' });
  };
  const rsm = `<set xmlns='http://jabber.org/protocol/rsm'><max>${max}</max>${after ? `<after>${esc(after)}</after>` : ''}</set>`;
  const t0 = nowMs();
  const r = await c.iq('set', `<query xmlns='urn:xmpp:mam:2' queryid='${qid}'>${form(fields)}${rsm}</query>`, { to, timeoutMs: 60000 });
  const ms = nowMs() - t0;
  c.onMessage = null;
  if (r.attrs.type !== 'result') throw new Error(`${to} ${JSON.stringify(fields)}: ${r.toString().slice(0, 300)}`);
  const set = r.getChild('fin', 'urn:xmpp:mam:2')?.getChild('set', 'http://jabber.org/protocol/rsm');
  const count = set?.getChildText('count');
  return { ms, items, last: set?.getChildText('last'), count: count === null || count === undefined ? null : Number(count) };
}

async function main() {
  const load0 = os.loadavg();
  const seedInfo = await seed();
  const F0 = await facts();
  const readable = new Set(F0.readable);
  const server = running = await startServer();
  const c = new XmppClient({ host: '127.0.0.1', port: PORT, domain: DOMAIN, username: 'probe', password: 'bench-pw', resource: 'search', timeoutMs: 60000 });
  await c.login();
  const big = `${BIG_ROOM}@${SERVICE}`;
  const span = F0.to - F0.from;
  const window = { start: new Date(F0.from.getTime() + span * 0.5).toISOString(), end: new Date(F0.from.getTime() + span * 0.5 + 3_600_000).toISOString() };
  const words = (body) => body.toLowerCase().split(/\s+/);
  const kinds = [
    // [label, to, fields, check(item), second page]
    ['XEP-0431 fulltext, rare word (1 in 1,000)', { '{urn:xmpp:fulltext:0}fulltext': FT_RARE.word }, (i) => words(i.body).includes(FT_RARE.word)],
    ['match all, 2 common words', { [F('text')]: 'release plan' }, (i) => words(i.body).includes('release') && words(i.body).includes('plan')],
    ['match all, 2 common words, second page', { [F('text')]: 'release plan' }, (i) => words(i.body).includes('release') && words(i.body).includes('plan'), true],
    ['match any, 2 rare words', { [F('text')]: `${FT_RARE.word} ${FT_COMMON.word}`, [F('match')]: 'any' }, (i) => words(i.body).includes(FT_RARE.word) || words(i.body).includes(FT_COMMON.word)],
    ['exact phrase, 2 words', { [F('text')]: 'the team', [F('match')]: 'exact' }, (i) => i.body.toLowerCase().includes('the team')],
    ['case-sensitive word', { [F('text')]: 'Release', [F('case-sensitive')]: '1' }, (i) => i.body.includes('Release')],
    ['authors, one nick', { [F('authors')]: 'b7' }, (i) => i.nick === 'b7'],
    ['date window (1 hour) + word', { start: window.start, end: window.end, [F('text')]: 'the' }, (i) => words(i.body).includes('the')],
  ];
  const targets = [
    [`in the room of ${BIG.toLocaleString('en')} messages`, big, {}],
    [`across rooms: all ${readable.size} readable rooms (${((F0.readable.length - 1) * PER_ROOM + BIG).toLocaleString('en')} messages)`, SERVICE, {}],
    [`across rooms: one category (${catName(1)})`, SERVICE, { [F('category')]: catName(1) }],
  ];
  const rows = [];
  const cpu0 = process.cpuUsage();
  for (const [targetLabel, to, extra] of targets) {
    for (const [label, fields, check, second] of kinds) {
      const all = { ...fields, ...extra };
      const run = async () => {
        if (!second) return query(c, to, all);
        const p1 = await query(c, to, all);
        return query(c, to, all, { after: p1.last });
      };
      const first = await run();
      const bad = first.items.find((i) => !check(i) || (to === SERVICE && !readable.has(i.room)) || (extra[F('category')] && categoryOf(i.room) !== extra[F('category')]));
      if (bad || (first.items.length === 0 && SCALE >= 1 && !second)) throw new Error(`${targetLabel}, ${label}: ${first.items.length} results, wrong one: ${JSON.stringify(bad)}`);
      const ms = [];
      for (let i = 0; i < REPS; i++) {
        if (second) {
          const p1 = await query(c, to, all);
          ms.push((await query(c, to, all, { after: p1.last })).ms);
        } else ms.push((await query(c, to, all)).ms);
      }
      const s = summarizeArr(ms);
      rows.push({ target: targetLabel, label, p50: s.p50, p99: s.p99, max: s.max, first: first.ms, results: first.items.length, count: first.count, across: to === SERVICE });
      log(`${targetLabel} | ${label}: p50 ${s.p50} p99 ${s.p99} ms, ${first.items.length} results, count ${first.count ?? '–'}`);
    }
  }
  const cpu = process.cpuUsage(cpu0);
  await c.close?.();
  await server.stop();
  const load1 = os.loadavg();

  const worst = Math.max(...rows.filter((r) => r.across).map((r) => r.p99));
  const lines = [];
  lines.push('<!-- search:begin -->');
  lines.push('## Search in a room and across rooms (bench/search.mjs)');
  lines.push('');
  lines.push(`Generated by \`node bench/search.mjs\` on ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}; this section is rewritten by each run of it.`);
  lines.push('');
  lines.push(`- Machine: ${os.cpus().length} × ${os.cpus()[0]?.model.split(' ')[0] ?? 'CPU'}, Node ${process.version}; load average ${load0.map((x) => x.toFixed(2)).join(' ')} before, ${load1.map((x) => x.toFixed(2)).join(' ')} after (other jobs share the host). Perch from \`dist/\`, one process, PostgreSQL 15 (database ${A.db}).`);
  lines.push(`- Data (seeded straight into the tables${seedInfo.reused ? ', reused from an earlier run' : `: ${r1(seedInfo.insertS)} s insert + ${r1(seedInfo.vacuumS)} s VACUUM ANALYZE, ${seedInfo.sizeGiB.toFixed(1)} GiB`}): a governed service of ${CATEGORIES} categories (one with history off), ${ROOMS.toLocaleString('en')} rooms × ${PER_ROOM.toLocaleString('en')} messages and one room of ${BIG.toLocaleString('en')}, all in one time-ordered stream (rooms interleaved, about a message a second); bodies of 4–24 words, Zipf (s = 1.07) over the ${VOCABULARY.length} words of bench/archive-load.mjs, first word capitalised, '${FT_RARE.word}' in 1 message in ${FT_RARE.every}, '${FT_COMMON.word}' in 1 in ${FT_COMMON.every}; ${SENDERS} senders, skewed.`);
  lines.push(`- The querying user reads ${readable.size} rooms: open ones, closed and secret ones it is a member of; not disabled rooms (1 in 50) nor the category with history off. Every reply is checked (each result matches, names a readable room, and the category when asked).`);
  lines.push(`- Timing: MAM query IQ sent → IQ result received (the page of 50 results comes before it), one client, queries one after another, ${REPS} reps after one untimed warm-up ("first"). "second page": the first page, then the page after its last result; the time is the second page's. Count: the RSM \`<count/>\`, counted up to 200 matching rows for our fields and across rooms (2,000 for XEP-0431's field alone in a room) and left out beyond.`);
  lines.push('');
  lines.push(`Target: across rooms, p99 ≤ 50 ms: **${worst <= 50 ? 'met' : 'not met'}** (worst ${r1(worst)} ms).`);
  lines.push('');
  lines.push('| where | query | p50 ms | p99 ms | max ms | first ms | results | count |');
  lines.push('|---|---|---|---|---|---|---|---|');
  for (const r of rows) lines.push(`| ${r.target} | ${r.label} | ${r1(r.p50)} | ${r1(r.p99)} | ${r1(r.max)} | ${r1(r.first)} | ${r.results} | ${r.count ?? 'left out'} |`);
  lines.push('');
  lines.push(`Client CPU over the queries: ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms.`);
  lines.push('');
  lines.push('```sh');
  lines.push('npm run build && node bench/search.mjs        # seeds perch_bench_search once (kept), then measures');
  lines.push('```');
  lines.push('<!-- search:end -->');
  const text = lines.join('\n');
  fs.writeFileSync(path.join(WORK, 'search.md'), text);
  if (!A['no-docs']) writeDocsSection(ROOT, text, 'search', 'bench/search.mjs', log);
  else console.log(text);
  fs.rmSync(WORK, { recursive: true, force: true });
  process.exit(0);
}

let running = null;
main().catch(async (e) => { console.error(e); await running?.stop(); process.exit(1); });
