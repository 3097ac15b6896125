#!/usr/bin/env node
// One round of room lease renewals at the original's room count, as a node holding every room makes it
// each second: one call per room (renewLease) against the batched form (renewLeases), on a private
// redis-server. Prints wall time of the round and Redis CPU per round (INFO cpu).
//   npm run build && node bench/lease-renewal.mjs [--rooms 33000] [--rounds 5] [--port 38391]
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { redisCpuSec } from './resources.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => { const i = process.argv.indexOf(name); return i === -1 ? def : Number(process.argv[i + 1]); };
const ROOMS = arg('--rooms', 33000), ROUNDS = arg('--rounds', 5), PORT = arg('--port', 38391);
const { RedisSessionStore } = await import(path.join(ROOT, 'dist/storage/session-redis.js'));
const redis = spawn('redis-server', ['--port', String(PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 500));
const url = `redis://127.0.0.1:${PORT}`;
const store = new RedisSessionStore({ url, nodeId: 'bench-node' });
await store.start();
const keys = Array.from({ length: ROOMS }, (_, i) => `muc:conference.bench.local:room-${i}`);
for (let i = 0; i < keys.length; i += 1000) await Promise.all(keys.slice(i, i + 1000).map((k) => store.acquireLease(k, 4000)));
const rows = [];
for (const [name, round] of [['one call per room', () => Promise.all(keys.map((k) => store.renewLease(k, 4000)))], ['batched', () => store.renewLeases(keys, 4000)]]) {
  const walls = [], cpus = [];
  for (let r = 0; r < ROUNDS; r++) {
    const c0 = await redisCpuSec(PORT), t0 = performance.now();
    const ok = await round();
    walls.push(performance.now() - t0);
    cpus.push((await redisCpuSec(PORT)) - c0);
    if (ok.some((x) => !x)) throw new Error('a lease was not renewed');
  }
  const med = (a) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)];
  rows.push([name, med(walls).toFixed(0), (med(cpus) * 1000).toFixed(0)]);
}
console.log(`${ROOMS} leases, median of ${ROUNDS} rounds`);
console.log(['renewal', 'round ms', 'Redis CPU ms per round'].join(' | '));
for (const r of rows) console.log(r.join(' | '));
await store.close();
redis.kill();
