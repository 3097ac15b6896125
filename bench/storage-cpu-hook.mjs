// Loaded into a load generator that meters with the shared lib/stats.mjs Meter (node --import; xmppbench and
// bench/mam-query.mjs): adds the CPU of the Redis server on 127.0.0.1:$PERCH_BENCH_METER_REDIS_PORT over each
// metered phase (redis_cpu_pct, taken out of "other"). The Meter counts the PostgreSQL backends itself (--db-name).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { redisCpuSec, chargeStorage } from './resources.mjs';

const port = Number(process.env.PERCH_BENCH_METER_REDIS_PORT ?? 0);
if (port) {
  const xb = process.env.XMPPBENCH_DIR ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'shared', 'bench');
  // the same module instance as the load generator's own import (ESM resolves symlinks)
  const { Meter } = await import(pathToFileURL(fs.realpathSync(path.join(xb, 'lib', 'stats.mjs'))).href);
  const { start, stop } = Meter.prototype;
  Meter.prototype.start = function startWithRedis(...a) { this.redis0 = redisCpuSec(port); return start.apply(this, a); };
  Meter.prototype.stop = function stopWithRedis(...a) {
    const r = stop.apply(this, a);
    const r1 = redisCpuSec(port);
    return chargeStorage(r, { db_cpu_s: null, redis_cpu_s: r1 === null || this.redis0 === null ? null : r1 - this.redis0 });
  };
}
