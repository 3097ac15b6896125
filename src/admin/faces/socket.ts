// The local face of the admin operations: a Unix domain socket in the data directory, so that the
// CLI acts through the running server (at once, on every node, and without opening a PGlite
// directory the server holds). Whoever can open the socket is the local admin: it is created
// owner-only (0600) and not served from a directory others can write.
import net from 'node:net';
import { dirname } from 'node:path';
import { chmod, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import type { Server } from '../../context.js';
import { findAdminCommand } from '../catalog.js';
import { AdminError, LOCAL_ADMIN, runCommand, type Progress } from '../command.js';
import {
  PROGRESS_PER_SECOND, PROTOCOL_VERSION, lineReader, notPrivate, pidPath, socketPath, workerNumber, workerSocketPath, type AdminReply, type AdminRequest, type Hello, type ProgressLine,
} from '../socket.js';

/** Does a server answer on this socket path? false when nothing listens there (a stale file). */
export function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export interface AdminSocket { close(): Promise<void> }

/**
 * Marks the data directory as held by this server (the pid file the CLI checks) and serves the
 * admin socket there, unless it must not: permissions others could abuse, or another live server
 * on the directory. Refusals are logged; the server runs on without the socket.
 */
export async function serveAdminSocket(server: Server): Promise<AdminSocket> {
  const dir = server.config.dataDir;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const worker = workerNumber();
  if (worker !== null) {
    // The primary holds the directory (its pid file) and forwards admin.sock to this socket.
    const own = workerSocketPath(dir, worker);
    await mkdir(dirname(own), { recursive: true, mode: 0o700 });
    return (await listen(server, own)) ?? { close: async () => {} };
  }
  const path = socketPath(dir);
  if (await answers(path)) {
    server.log.error('admin socket not served: another server answers on it', { path });
    return { close: async () => {} };
  }
  const pidFile = pidPath(dir);
  await writeFile(pidFile, `${process.pid}\n`, { mode: 0o600 });
  const releasePid = async () => {
    // Another server may have taken the directory over meanwhile: remove only our own pid file.
    if ((await readFile(pidFile, 'utf8').catch(() => '')).trim() === String(process.pid)) await unlink(pidFile).catch(() => {});
  };
  const listener = await listen(server, path);
  if (!listener) return { close: releasePid };
  return {
    async close() {
      await listener.close();
      await releasePid();
    },
  };
}

async function listen(server: Server, path: string): Promise<{ close(): Promise<void> } | null> {
  const refusal = await notPrivate(server.config.dataDir);
  if (refusal) {
    server.log.error('admin socket not served', { reason: refusal });
    return null;
  }
  await unlink(path).catch(() => {});
  const inFlight = new Set<Promise<void>>();
  const open = new Set<net.Socket>();
  const listener = net.createServer((socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    socket.setEncoding('utf8');
    const hello: Hello = { perch: 'admin', version: PROTOCOL_VERSION, domain: server.domain, node: server.sessions.nodeId, pid: process.pid };
    socket.write(JSON.stringify(hello) + '\n');
    socket.on('error', () => {});
    socket.on('data', lineReader((line) => {
      const send = (msg: AdminReply | ProgressLine) => { if (!socket.destroyed) socket.write(JSON.stringify(msg) + '\n'); };
      const p = handle(server, line, send)
        .then(send)
        .catch((e: unknown) => server.log.error('admin socket request failed', { err: e }));
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }));
  });
  // The socket file is created with the process umask: make it owner-only from its first moment.
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      // exclusive: a worker's socket is its own, not shared through the primary as its ports are.
      listener.listen({ path, exclusive: true }, () => { listener.off('error', reject); resolve(); });
    });
  } catch (e) {
    server.log.error('admin socket not served', { path, err: e });
    return null;
  } finally {
    process.umask(umask);
  }
  await chmod(path, 0o600);
  server.log.info('admin socket listening', { path });
  return {
    async close() {
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      // Operations under way finish (their replies go out); idle connections do not hold the stop.
      await Promise.allSettled([...inFlight]);
      for (const s of open) s.end();
      for (const s of open) s.destroy();
      await closed;
    },
  };
}

/**
 * Progress reports of one request as lines, at most PROGRESS_PER_SECOND a second: the latest position
 * waits for its turn; stop sends the one still waiting (the final position comes before the reply),
 * and none goes out after.
 */
export function progressForwarder(id: number, send: (line: ProgressLine) => void, now: () => number = Date.now): { report(p: Progress): void; stop(): void } {
  const interval = 1000 / PROGRESS_PER_SECOND;
  let last = -Infinity;
  let waiting: Progress | null = null;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const flush = () => {
    timer = null;
    if (stopped || !waiting) return;
    last = now();
    const p = waiting;
    waiting = null;
    send({ id, progress: { phase: p.phase, done: p.done, ...(p.total !== undefined ? { total: p.total } : {}), ...(p.unit ? { unit: p.unit } : {}) } });
  };
  return {
    report(p) {
      if (stopped) return;
      waiting = p;
      if (timer) return;
      const wait = last + interval - now();
      if (wait <= 0) flush();
      else timer = setTimeout(flush, wait);
    },
    stop() {
      if (timer) clearTimeout(timer);
      flush();
      stopped = true;
    },
  };
}

async function handle(server: Server, line: string, send: (line: ProgressLine) => void): Promise<AdminReply> {
  let req: AdminRequest;
  try {
    req = JSON.parse(line) as AdminRequest;
  } catch {
    return { id: 0, ok: false, error: 'not JSON', condition: 'bad-request' };
  }
  if (typeof req !== 'object' || req === null) return { id: 0, ok: false, error: 'not a request object', condition: 'bad-request' };
  const id = typeof req.id === 'number' ? req.id : 0;
  const cmd = typeof req.command === 'string' ? findAdminCommand(req.command) : undefined;
  if (!cmd) return { id, ok: false, error: `unknown command ${String(req.command)}`, condition: 'item-not-found' };
  const input: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(typeof req.input === 'object' && req.input !== null ? req.input : {})) {
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) input[k] = v;
  }
  const forwarder = req.progress === true ? progressForwarder(id, send) : null;
  try {
    const output = await runCommand(cmd, {
      actor: LOCAL_ADMIN, domain: server.domain, scramIterations: server.config.scramIterations, stores: server.stores, server, config: server.config,
      ...(forwarder ? { progress: forwarder.report } : {}),
    }, input);
    return { id, ok: true, output };
  } catch (e) {
    if (e instanceof AdminError) return { id, ok: false, error: e.message, condition: e.condition };
    server.log.error('admin command failed', { command: cmd.id, err: e });
    return { id, ok: false, error: `internal error: ${(e as Error).message}`, condition: 'internal-server-error' };
  } finally {
    forwarder?.stop();
  }
}
