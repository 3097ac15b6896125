#!/usr/bin/env node
// How long Redis is out for the session store on Sentinel when its master goes: a private Sentinel set
// (test/redis-topologies.ts: a master, a replica, three sentinels on loopback), two session stores
// (storage/session-redis.ts, a node's settings) each counting a hit every 50 ms, and in each run one of:
//   kill            the master shut down (SHUTDOWN NOSAVE), nothing else
//   failover-kill:N SENTINEL FAILOVER, then N ms after the sentinels name the new master, that one shut down
//                   (the demoted master is not yet its replica: what docs/architecture.md left open)
// Reported per scenario: ms from the shutdown to the stores answering again (both), over --runs runs,
// and the longest outage a store saw. Needs redis-server; builds nothing (run `npm run build` first).
//
//   node bench/sentinel-outage.mjs [--runs 3] [--scenarios kill,failover-kill:0,failover-kill:500,failover-kill:2000] [--port-base 39600]
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const arg = (name, dflt) => { const i = argv.indexOf(`--${name}`); return i === -1 ? dflt : argv[i + 1]; };
const RUNS = Number(arg('runs', 3));
const SCENARIOS = arg('scenarios', 'kill,failover-kill:0,failover-kill:500,failover-kill:2000').split(',');
const PORT_BASE = Number(arg('port-base', 39600));
const { startSentinelSet, redisCommand, redisBinariesMissing } = await import(pathToFileURL(path.join(ROOT, 'dist/test/redis-topologies.js')).href);
const { RedisSessionStore } = await import(pathToFileURL(path.join(ROOT, 'dist/storage/session-redis.js')).href);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const missing = redisBinariesMissing();
if (missing) { console.error(missing); process.exit(2); }

/**
 * One run: the ms from the shutdown until both stores answered again (0 for a store that never failed
 * after it), and the longest outage a store saw.
 */
async function run(scenario) {
  const set = await startSentinelSet(PORT_BASE);
  const stores = [0, 1].map((i) => new RedisSessionStore({ url: set.url, nodeId: `outage-${i}`, prefix: `perch-outage:${process.pid}:` }));
  let stop = false;
  /** Per store: its outages as [first failure, next success], and its last success. */
  const outages = [[], []], lastOk = [0, 0];
  try {
    await Promise.all(stores.map((s) => s.start()));
    const loops = stores.map(async (s, i) => {
      let failingSince = 0;
      while (!stop) {
        try {
          await s.hit(`outage-${i}`, 60);
          if (failingSince) outages[i].push([failingSince, Date.now()]);
          failingSince = 0;
          lastOk[i] = Date.now();
        } catch {
          failingSince ||= Date.now();
        }
        await sleep(50);
      }
    });
    await sleep(1000);
    let master = await set.masterPort();
    const [kind, after] = scenario.split(':');
    if (kind === 'failover-kill') {
      master = await set.manualFailover();
      await sleep(Number(after ?? 0));
    }
    // SHUTDOWN answers nothing: the connection closing is the answer.
    void redisCommand(master, 'SHUTDOWN', 'NOSAVE').catch(() => {});
    const killedAt = Date.now();
    // Settled: both stores answering for the last 3 s, at least 5 s after the shutdown (or a minute gone).
    const until = killedAt + 60_000;
    while (Date.now() < until && !(Date.now() - killedAt > 5000 && lastOk.every((t) => Date.now() - t < 200) && outages.every((o) => !o.length || Date.now() - o.at(-1)[1] > 3000))) await sleep(50);
    stop = true;
    await Promise.all(loops);
    const settled = lastOk.every((t) => t > killedAt);
    const back = settled ? Math.max(...outages.map((o) => { const last = o.filter(([, end]) => end > killedAt).at(-1); return last ? last[1] - killedAt : 0; })) : null;
    return { back, longest: Math.max(0, ...outages.flat().map(([a, b]) => b - a)) };
  } finally {
    stop = true;
    await Promise.all(stores.map((s) => s.close().catch(() => {})));
    await set.stop();
  }
}

const rows = [];
for (const scenario of SCENARIOS) {
  const results = [];
  for (let r = 0; r < RUNS; r++) {
    const res = await run(scenario);
    results.push(res);
    console.log(`${scenario} run ${r + 1}: answering ${res.back === null ? 'never (60 s)' : `${res.back} ms`} after the shutdown; longest outage a store saw ${res.longest} ms`);
  }
  const backs = results.map((x) => x.back).filter((x) => x !== null);
  rows.push(`| ${scenario} | ${backs.length ? `${median(backs)} (${Math.min(...backs)}–${Math.max(...backs)})` : '–'} | ${Math.max(...results.map((x) => x.longest))} | ${results.length - backs.length} |`);
}
console.log(`\n| scenario | ms from the shutdown to both stores answering: median (range) | longest outage a store saw, ms | runs never answering |\n|---|---|---|---|\n${rows.join('\n')}`);
process.exit(0);
