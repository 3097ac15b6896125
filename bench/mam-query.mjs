#!/usr/bin/env node
// Times XEP-0313 queries (with XEP-0059 paging) on a room archive that is already loaded, for any server:
// the shared xmppbench `mam` scenario preloads its own room by sending, which cannot reach 1,000,000 messages.
//
//   node bench/mam-query.mjs --port 29222 --domain bench.local --manifest /tmp/archive.json --reps 100 \
//        --server-pid 1234 --db-name perch_bench --label perch --tag mam-1m [--out FILE]
//
// The manifest (written by bench/muc.mjs after bulk-loading, see bench/archive-load.mjs) names the room and what
// each query must find. Timing = query IQ sent → result IQ received (all result messages precede it), per
// query; p50/p99 over --reps repetitions after --warmup untimed ones (default 1; the first reported as
// first_ms, the slowest as warmup_max_ms), every timing kept in order (samples_ms). Every reply is
// checked: a filter the server ignores is reported as not filtered, not timed as if it worked.
// Connection code is xmppbench's (lib/client.mjs, lib/stats.mjs), found in XMPPBENCH_DIR (default ../shared/bench).
// CPU: the server's (--server-pid), its PostgreSQL backends' (--db-name) and, loaded with
// `node --import ./bench/storage-cpu-hook.mjs` and PERCH_BENCH_METER_REDIS_PORT=P, its Redis's (as bench/muc.mjs runs it).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const XB = process.env.XMPPBENCH_DIR ?? path.resolve(HERE, '..', '..', 'shared', 'bench');
const { XmppClient, nowMs } = await import(pathToFileURL(path.join(XB, 'lib', 'client.mjs')).href);
const { summarizeArr, ServerProbe, Meter } = await import(pathToFileURL(path.join(XB, 'lib', 'stats.mjs')).href);
const { esc } = await import(pathToFileURL(path.join(XB, 'lib', 'xml.mjs')).href);

const NS_MAM = 'urn:xmpp:mam:2';
const NS_RSM = 'http://jabber.org/protocol/rsm';
const NS_FWD = 'urn:xmpp:forward:0';
const NS_MUC = 'http://jabber.org/protocol/muc';
const FT_FIELDS = ['{urn:xmpp:fulltext:0}fulltext', 'withtext'];

const { values: A } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '5222' },
    domain: { type: 'string', default: 'bench.local' },
    manifest: { type: 'string' },
    reps: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '1' },
    page: { type: 'string', default: '50' },
    pages: { type: 'string', default: '10' },
    user: { type: 'string', default: 'user0' },
    password: { type: 'string', default: 'bench-0' },
    'server-pid': { type: 'string', default: '' },
    'db-name': { type: 'string', default: '' },
    label: { type: 'string', default: '' },
    tag: { type: 'string', default: '' },
    out: { type: 'string', default: '' },
    timeout: { type: 'string', default: '60000' },
  },
});
if (!A.manifest) { console.error('usage: mam-query.mjs --manifest FILE --port P [--reps N] ...'); process.exit(2); }
const M = JSON.parse(fs.readFileSync(A.manifest, 'utf8'));
const room = M.room;
const REPS = Number(A.reps), WARMUP = Math.max(1, Number(A.warmup)), PAGE = Number(A.page), PAGES = Number(A.pages);
const r2 = (x) => (x === null || x === undefined ? null : Math.round(x * 100) / 100);
const log = (s) => console.log(`[${new Date().toISOString().slice(11, 23)}] ${s}`);

function form(fields) {
  if (!fields.length) return '';
  let s = `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>${NS_MAM}</value></field>`;
  for (const [k, v] of fields) s += `<field var='${esc(k)}'><value>${esc(v)}</value></field>`;
  return s + '</x>';
}

let qn = 0;
/** One query; resolves {ms, items: [{id, from, body, stamp}], complete, first, last, count} or {ms, error}. */
async function query(c, { fields = [], max = PAGE, before = null, after = null }) {
  const qid = `q${++qn}`;
  const items = [];
  const prev = c.onMessage;
  c.onMessage = (el) => {
    const res = el.getChild('result', NS_MAM);
    if (!res || res.attrs.queryid !== qid) return prev && prev(el);
    const fwd = res.getChild('forwarded', NS_FWD);
    const msg = fwd?.getChild('message');
    items.push({ id: res.attrs.id, from: msg?.attrs.from, body: msg?.getChildText('body') ?? '', stamp: fwd?.getChild('delay')?.attrs.stamp });
  };
  let rsm = `<set xmlns='${NS_RSM}'><max>${max}</max>`;
  if (before !== null) rsm += before === '' ? '<before/>' : `<before>${esc(before)}</before>`;
  if (after !== null) rsm += `<after>${esc(after)}</after>`;
  rsm += '</set>';
  const t0 = nowMs();
  let r;
  try {
    r = await c.iq('set', `<query xmlns='${NS_MAM}' queryid='${qid}'>${form(fields)}${rsm}</query>`, { to: room, timeoutMs: Number(A.timeout) });
  } finally {
    c.onMessage = prev;
  }
  const ms = nowMs() - t0;
  if (r.attrs.type !== 'result') {
    const e = r.getChild('error');
    return { ms, error: e ? e.children.map((x) => x.local).join(' ') + (e.getChildText('text') ? `: ${e.getChildText('text')}` : '') : r.toString().slice(0, 300) };
  }
  const fin = r.getChild('fin', NS_MAM);
  const set = fin?.getChild('set', NS_RSM);
  const cnt = set?.getChildText('count');
  return { ms, items, complete: fin?.attrs.complete === 'true', first: set?.getChildText('first'), last: set?.getChildText('last'), count: cnt === undefined ? null : Number(cnt) };
}

const Q = {};
/** Warm-up + `reps` timed runs of fn; check(result) returns null when the reply is right, else why not. */
async function timed(name, fn, check, reps = REPS) {
  const first = await fn();
  if (first.error) { Q[name] = { error: first.error }; log(`${name}: error ${first.error}`); return; }
  const bad = check(first);
  if (bad) { Q[name] = { not_filtered: bad, first_ms: r2(first.ms), results: first.items.length, rsm_count: first.count }; log(`${name}: ${bad}`); return; }
  const warm = [first.ms];
  while (warm.length < WARMUP) {
    const w = await fn();
    if (w.error) { Q[name] = { error: w.error, in_warmup: warm.length }; return; }
    warm.push(w.ms);
  }
  const ms = [];
  let last = first;
  for (let i = 0; i < reps; i++) {
    last = await fn();
    if (last.error) { Q[name] = { error: last.error, after_reps: i }; return; }
    ms.push(last.ms);
  }
  const s = summarizeArr(ms);
  // samples in order: whether a tail is the first reps (code still warming) or spread (pauses) shows there
  Q[name] = { reps, first_ms: r2(first.ms), warmup: WARMUP, warmup_max_ms: r2(Math.max(...warm)), ...s, results: last.items.length, rsm_count: last.count, complete: last.complete, samples_ms: ms.map(r2) };
  log(`${name}: p50 ${s.p50} ms p99 ${s.p99} ms (first ${r2(first.ms)} ms), ${last.items.length} results, rsm count ${last.count}`);
}

const sameAsAll = (items, pred) => items.length > 0 && items.every(pred);

async function main() {
  const pids = A['server-pid'] ? A['server-pid'].split(',').filter(Boolean) : [];
  const c = new XmppClient({ host: A.host, port: Number(A.port), domain: A.domain, username: A.user, password: A.password, resource: 'mamq', timeoutMs: Number(A.timeout) });
  await c.login();
  // some servers only let occupants query a room's archive
  await new Promise((resolve, reject) => {
    const full = `${room}/querier`;
    const timer = setTimeout(() => reject(new Error(`join timeout ${full}`)), 30000);
    c.onPresence = (el) => {
      if (el.attrs.from !== full) return;
      clearTimeout(timer); c.onPresence = null;
      if (el.attrs.type === 'error') reject(new Error(`join error: ${el.toString().slice(0, 300)}`)); else resolve();
    };
    c.send(`<presence to='${esc(full)}'><x xmlns='${NS_MUC}'><history maxstanzas='0'/></x></presence>`);
  });
  const fr = await c.iq('get', `<query xmlns='${NS_MAM}'/>`, { to: room });
  const formVars = fr.attrs.type === 'result' ? (fr.getChild('query', NS_MAM)?.getChild('x', 'jabber:x:data')?.getChildren('field').map((f) => f.attrs.var) ?? []) : [];
  const E = M.expect;
  const out = { scenario: 'mam-query', label: A.label || null, tag: A.tag || null, ts: new Date().toISOString(), room, archive_size: M.n, reps: REPS, page: PAGE, mam_form_fields: formVars, expect: E };
  const meter = new Meter(new ServerProbe(pids), A['db-name']).start();
  const cpu0 = process.cpuUsage();

  // 1. last page
  await timed('last_page', () => query(c, { before: '' }), (r) =>
    r.items.length !== Math.min(PAGE, M.n) ? `${r.items.length} results, expected ${Math.min(PAGE, M.n)}`
      : r.count !== null && r.count !== M.n ? `rsm count ${r.count}, expected ${M.n}`
        : r.items.at(-1)?.stamp && r.items.at(-1).stamp.slice(0, 19) !== E.last_stamp.slice(0, 19) ? `newest result stamped ${r.items.at(-1).stamp}, expected ${E.last_stamp}` : null);

  // 2. paging back PAGES pages from the end: each page is one timed query; a walk is PAGES queries
  {
    const perPage = [], walks = [];
    let problem = null;
    const nWalks = Math.max(1, Math.round(REPS / PAGES));
    for (let w = 0; w <= nWalks && !problem; w++) { // walk 0 is the warm-up
      let before = '';
      const seen = new Set();
      const t0 = nowMs();
      const pageMs = [];
      for (let p = 0; p < PAGES; p++) {
        const r = await query(c, { before });
        if (r.error) { problem = `error ${r.error}`; break; }
        if (r.items.length !== PAGE) { problem = `page ${p + 1}: ${r.items.length} results`; break; }
        for (const it of r.items) { if (seen.has(it.id)) { problem = `page ${p + 1} repeats ${it.id}`; break; } seen.add(it.id); }
        pageMs.push(r.ms);
        before = r.first ?? r.items[0].id;
      }
      if (w > 0) { perPage.push(...pageMs); walks.push(nowMs() - t0); }
    }
    Q.page_back = problem ? { error: problem } : { pages: PAGES, walks: walks.length, per_page: summarizeArr(perPage), walk_total: summarizeArr(walks), p50: summarizeArr(perPage).p50, p99: summarizeArr(perPage).p99 };
    if (!problem) log(`page_back: ${walks.length} walks of ${PAGES} pages: per page p50 ${Q.page_back.per_page.p50} ms p99 ${Q.page_back.per_page.p99} ms; walk p50 ${Q.page_back.walk_total.p50} ms`);
    else log(`page_back: ${problem}`);
  }

  // 3. 'with': servers differ (occupant JID room/nick or the sender's real bare JID); the first that filters is timed
  {
    const nick = E.with.nick, real = `user${E.with.user}@${A.domain}`;
    const tried = {};
    for (const w of [`${room}/${nick}`, real]) {
      const r = await query(c, { fields: [['with', w]], before: '' });
      const ok = !r.error && sameAsAll(r.items, (it) => it.from === `${room}/${nick}`) && r.items.length === Math.min(PAGE, E.with.count) && (r.count === null || r.count === E.with.count);
      tried[w] = r.error ? `error ${r.error}` : ok ? 'filters' : `${r.items.length} results, rsm count ${r.count}, ${r.items.filter((it) => it.from !== `${room}/${nick}`).length} from others (expected ${E.with.count} from ${nick}): not filtered`;
      if (ok) {
        await timed('with', () => query(c, { fields: [['with', w]], before: '' }), () => null);
        Q.with.with = w;
        break;
      }
    }
    if (!Q.with) {
      Q.with = { not_filtered: Object.entries(tried).map(([k, v]) => `${k}: ${v}`).join('; ') };
      log(`with: ${Q.with.not_filtered}`);
    }
    Q.with.tried = tried;
  }

  // 4. time window (~1000 messages in the middle of the archive), first page oldest first
  await timed('window', () => query(c, { fields: [['start', E.window.start], ['end', E.window.end]] }), (r) =>
    r.items.length !== Math.min(PAGE, E.window.count) ? `${r.items.length} results, expected ${Math.min(PAGE, E.window.count)}`
      : r.count !== null && r.count !== E.window.count ? `rsm count ${r.count}, expected ${E.window.count}`
        : r.items[0]?.stamp && r.items[0].stamp.slice(0, 19) !== E.window.start.slice(0, 19) ? `first result stamped ${r.items[0].stamp}, expected ${E.window.start}` : null);

  // 5. full text: XEP-0431 field (or ejabberd's withtext) when advertised, else both probed; last page
  for (const [name, ft] of [['fulltext', E.fulltext_rare], ['fulltext_common', E.fulltext_common]]) {
    const advertised = FT_FIELDS.filter((v) => formVars.includes(v));
    const probes = {};
    for (const v of advertised.length ? advertised : FT_FIELDS) {
      const check = (r) => {
        const hits = r.items.filter((it) => it.body.toLowerCase().split(/\W+/).includes(ft.word)).length;
        return r.items.length !== Math.min(PAGE, ft.count) || hits !== r.items.length ? `${r.items.length} results (${hits} containing '${ft.word}'), expected ${Math.min(PAGE, ft.count)}`
          : r.count !== null && r.count !== ft.count ? `rsm count ${r.count}, expected ${ft.count}` : null;
      };
      const r = await query(c, { fields: [[v, ft.word]], before: '' });
      probes[v] = r.error ? `error ${r.error}` : (check(r) ?? 'filters');
      if (probes[v] === 'filters') {
        await timed(name, () => query(c, { fields: [[v, ft.word]], before: '' }), check);
        Object.assign(Q[name], { field: v, advertised: advertised.includes(v), word: ft.word, expected: ft.count });
        break;
      }
    }
    if (!Q[name]) Q[name] = { unsupported: true, advertised, probes };
    else Q[name].probes = probes;
    if (Q[name].unsupported) log(`${name}: unsupported (${Object.entries(probes).map(([k, v]) => `${k}: ${v}`).join('; ')})`);
  }

  const cpu1 = process.cpuUsage();
  out.resources = meter.stop((cpu1.user - cpu0.user + cpu1.system - cpu0.system) / 1e6);
  out.queries = Q;
  c.send(`<presence to='${esc(room)}/querier' type='unavailable'/>`);
  await c.close();
  return out;
}

let line, failed = false;
try {
  line = JSON.stringify(await main());
} catch (e) {
  failed = true;
  line = JSON.stringify({ scenario: 'mam-query', label: A.label || null, tag: A.tag || null, error: String(e?.stack ?? e) });
}
if (A.out) fs.appendFileSync(A.out, `${line}\n`);
console.log(line);
process.exit(failed ? 1 : 0);
