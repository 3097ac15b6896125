#!/usr/bin/env node
// Redis commands one login makes (and one logout), counted with INFO commandstats on a private
// redis-server around N logins to one node (connect, SASL, bind, initial presence and its echo).
// Counts are exact, not timings, so a busy machine does not change them; the node's own background
// (heartbeat) is measured idle over the same time and subtracted.
//
//   npm run build && node bench/redis-login-commands.mjs [--logins 20] [--port 37700] [ROOT ...]
//
// Each ROOT is a built checkout (its dist/conformance/harness.js starts its server); several are
// measured in turn (e.g. the tree before a change and this one). Default: this checkout.
// PostgreSQL: a database of its own on the shared server (CONFORMANCE_PG_URL), dropped after.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';
import { waitPort } from './lib.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); if (i === -1) return dflt; const v = args[i + 1]; args.splice(i, 2); return v; };
const LOGINS = Number(opt('--logins', '20'));
const PORT = Number(opt('--port', '37700'));
const ROOTS = args.length ? args.map((a) => path.resolve(a)) : [path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')];
const PG_ADMIN_URL = process.env.CONFORMANCE_PG_URL ?? 'postgres://root@127.0.0.1:5432/test';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const redisProc = spawn('redis-server', ['--port', String(PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
const redis = new Redis({ host: '127.0.0.1', port: PORT, lazyConnect: true });
const dbName = `perch_redisbench_${process.pid}`;
const admin = new pg.Client({ connectionString: PG_ADMIN_URL });

async function commandStats() {
  const out = {};
  for (const line of (await redis.info('commandstats')).split('\r\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (m && !['info', 'config|resetstat', 'flushall', 'select', 'client|setname', 'client|setinfo'].includes(m[1])) out[m[1]] = Number(m[2]);
  }
  return out;
}
const total = (s) => Object.values(s).reduce((a, b) => a + b, 0);
const diff = (a, b) => Object.fromEntries(Object.keys({ ...a, ...b }).map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]).filter(([, v]) => v !== 0));

async function measure(root, users, dbUrl) {
  const { startServer, login, xml } = await import(path.join(root, 'dist/conformance/harness.js'));
  await redis.flushall();
  const server = await startServer({ databaseUrl: dbUrl, redisUrl: `redis://127.0.0.1:${PORT}`, users, skipUserCreation: true });
  try {
    await sleep(500);
    // Idle background over the time the logins take, measured after them (same length).
    await redis.config('RESETSTAT');
    const t0 = Date.now();
    const sessions = [];
    for (let i = 0; i < LOGINS; i++) {
      const c = await login(server.ports.c2s, `u${i}`, 'pw', { resource: 'bench' });
      await c.xmpp.send(xml('presence'));
      await c.waitFor((el) => el.is('presence') && el.attrs.from === c.jid);
      sessions.push(c);
    }
    await sleep(200);
    const loginStats = await commandStats();
    const loginMs = Date.now() - t0;
    await redis.config('RESETSTAT');
    const t1 = Date.now();
    for (const c of sessions) await c.stop();
    await sleep(500);
    const logoutStats = await commandStats();
    const logoutMs = Date.now() - t1;
    // Failed logins (wrong password): the cluster-wide throttle counters.
    const FAILS = Math.min(LOGINS, 5);
    await redis.config('RESETSTAT');
    const t2 = Date.now();
    for (let i = 0; i < FAILS; i++) {
      try {
        const c = await login(server.ports.c2s, `u${i}`, 'wrong', { resource: 'bench' });
        await c.stop();
      } catch {
        // expected: not-authorized
      }
    }
    await sleep(200);
    const failStats = await commandStats();
    const failMs = Date.now() - t2;
    await redis.config('RESETSTAT');
    await sleep(Math.max(loginMs, logoutMs));
    const idle = await commandStats();
    const idleMs = Math.max(loginMs, logoutMs);
    const perLogin = (total(loginStats) - total(idle) * (loginMs / idleMs)) / LOGINS;
    const perLogout = (total(logoutStats) - total(idle) * (logoutMs / idleMs)) / LOGINS;
    const perFail = (total(failStats) - total(idle) * (failMs / idleMs)) / FAILS;
    return { perLogin, perLogout, perFail, FAILS, failStats, loginStats, logoutStats, idle, loginMs, idleMs };
  } finally {
    await server.stop();
  }
}

try {
  await waitPort(PORT, 10_000);
  await redis.connect();
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${dbName}`;
  const users = Object.fromEntries(Array.from({ length: LOGINS }, (_, i) => [`u${i}`, 'pw']));
  const { createUsers } = await import(path.join(ROOTS[0], 'dist/conformance/harness.js'));
  const { mkdtemp } = await import('node:fs/promises');
  await createUsers({ databaseUrl: u.toString(), dataDir: await mkdtemp('/tmp/perch-redisbench-') }, users);
  for (const root of ROOTS) {
    const r = await measure(root, users, u.toString());
    const per = (s) => Object.entries(s).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / LOGINS).toFixed(2)}`).join(', ');
    const req = (s, n) => ((['evalsha', 'eval', 'multi', 'get', 'set', 'exists', 'del'].reduce((a, k) => a + (s[k] ?? 0), 0)) / n).toFixed(2);
    console.log(`${root}: ${r.perLogin.toFixed(2)} Redis commands per login, ${r.perLogout.toFixed(2)} per logout, ${r.perFail.toFixed(2)} per failed login (${LOGINS} logins in ${r.loginMs} ms)`);
    console.log(`  login:  ${per(r.loginStats)} (requests from the node, background included: ${req(r.loginStats, LOGINS)})`);
    console.log(`  logout: ${per(r.logoutStats)}`);
    console.log(`  failed: ${Object.entries(r.failStats).map(([k, v]) => `${k} ${(v / r.FAILS).toFixed(2)}`).join(', ')}`);
    console.log(`  idle over ${r.idleMs} ms: ${JSON.stringify(r.idle)}`);
  }
} finally {
  redis.disconnect();
  redisProc.kill('SIGKILL');
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
  await admin.end().catch(() => {});
}
