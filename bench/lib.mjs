// Small helpers shared by the benchmark runners.
import net from 'node:net';

/** Resolves once something listens on 127.0.0.1:port, rejects after timeoutMs. */
export function waitPort(port, timeoutMs) {
  const until = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => { s.destroy(); resolve(); });
      s.once('error', () => { s.destroy(); if (Date.now() > until) reject(new Error(`port ${port} not open`)); else setTimeout(attempt, 100); });
    };
    attempt();
  });
}

/** True when nothing listens on 127.0.0.1:port. */
export function portFree(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(false); });
    s.once('error', () => resolve(true));
  });
}

/** Accounts user0..userN with password bench-<n> (the load generator's scheme), 8 created at a time. */
export async function createBenchAccounts(addUser, stores, domain, n, iterations) {
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next <= n) {
      const i = next++;
      const r = await addUser(stores, domain, `user${i}`, `bench-${i}`, iterations);
      if (r !== 'ok') throw new Error(`addUser user${i}: ${r}`);
    }
  }));
}
