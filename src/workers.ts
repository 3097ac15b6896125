// `perch start`: one node in this process, or a primary that runs N worker processes (node:cluster),
// each a full node of the cluster (its own node id, database pool and Redis connections) sharing the
// listening ports. What a machine has once stays in the primary: the pid file and the admin socket
// (each connection forwarded to a worker: admin operations act on the whole cluster, so any worker
// answers for all), the metrics port (the workers' registries summed), signals, and restarts.
import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';
import os from 'node:os';
import { chmod, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import type { Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import { ClusterMetrics, shareWithPrimary } from './metrics.js';
import { ServerCore } from './server.js';
import { guardProcess } from './process-guard.js';
import { tlsFiles } from './tls.js';
import { withNodeFlags } from './node-flags.js';
import { WORKER_ENV, notPrivate, pidPath, socketPath, workerNumber, workerSocketPath } from './admin/socket.js';
import { answers } from './admin/faces/socket.js';

export interface WorkerPlan {
  count: number;
  /** Why this many, for the log. */
  why: string;
}

const EMBEDDED_WHY = 'one process: the embedded database (PGlite) is one process\'s and the in-process session store cannot be shared; configure databaseUrl and redisUrl for one worker per core';

/** How many node processes `perch start` runs: the configured count, else one per core with PostgreSQL and Redis. */
export function plannedWorkers(config: Config, cores = os.availableParallelism()): WorkerPlan {
  if (typeof config.workers === 'number') return { count: config.workers, why: 'configured' };
  if (config.databaseUrl === null || config.redisUrl === null) return { count: 1, why: EMBEDDED_WHY };
  return { count: cores, why: `one per core (${cores})` };
}

/** `perch start`. Returns -1: the process keeps running (it exits from its signal handlers). */
export async function startCommand(config: Config): Promise<number> {
  const worker = workerNumber();
  if (worker !== null) return runWorker(config, worker);
  const plan = plannedWorkers(config);
  if (plan.count > 1) return runPrimary(config, plan);
  const log = createLogger(config.logLevel, { node: config.nodeId });
  if (config.workers === 'auto') log.info('workers: 1', { why: plan.why });
  return runNode(config, log);
}

/** One node in this process until a signal (or a drain) ends it. */
async function runNode(config: Config, log: Logger, beforeStart?: (server: ServerCore) => void, started?: (server: ServerCore) => void): Promise<number> {
  const server = new ServerCore(config, log);
  // A drained node has stopped: the process ends, with success.
  server.onExit = () => process.exit(0);
  beforeStart?.(server);
  await server.start();
  guardProcess(server);
  // A terminal's Ctrl-C reaches a worker and its primary (which then sends SIGTERM): one stop.
  let stopping: Promise<void> | null = null;
  const stop = (signal: string) => {
    stopping ??= (async () => {
      server.log.info('stopping', { signal });
      await server.stop();
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  started?.(server);
  return -1;
}

/** What a worker tells its primary once it serves. */
interface StartedMessage { perch: 'started'; node: string; ports: Record<string, number> }

function runWorker(config: Config, n: number): Promise<number> {
  // The primary serves the metrics port, with every worker's figures summed.
  config.listen.metrics = null;
  const log = createLogger(config.logLevel, { node: config.nodeId, worker: n });
  return runNode(config, log, (server) => shareWithPrimary(server.metrics), (server) => {
    const msg: StartedMessage = { perch: 'started', node: server.sessions.nodeId, ports: { ...server.ports } };
    process.send?.(msg);
  });
}

// --- the primary ------------------------------------------------------------------------------

/** Restart delays after a worker dies: doubled per death in a row, up to the cap. */
const RESTART_FIRST_MS = 1_000;
const RESTART_MAX_MS = 30_000;
/** A worker that ran this long before dying starts the backoff over. */
const RAN_LONG_MS = 60_000;
/** How long SIGTERM gives the workers to stop before they are killed. */
const STOP_TIMEOUT_MS = 60_000;

interface Slot {
  n: number;
  /** Restarts so far: part of the node id, so a restarted worker is a new node (the old one's sessions are cleaned by the others). */
  generation: number;
  node: string;
  worker: Worker | null;
  started: boolean;
  everStarted: boolean;
  forkedAt: number;
  deathsInARow: number;
  timer: NodeJS.Timeout | null;
}

async function runPrimary(config: Config, plan: WorkerPlan): Promise<number> {
  // Leaves room in the 64 characters of a node id for the worker suffix.
  const base = config.nodeId.slice(0, 48);
  const log = createLogger(config.logLevel, { node: base, worker: 'primary' });
  log.info('starting workers', { workers: plan.count, why: plan.why, pid: process.pid });
  // One self-signed certificate for all: made here, before the workers would race to make theirs.
  await tlsFiles(config, log);
  // Workers run with Perch's Node flags whatever started the primary (an operator's own win out).
  cluster.setupPrimary({ execArgv: withNodeFlags(process.execArgv) });
  const slots: Slot[] = Array.from({ length: plan.count }, (_, i) => ({
    n: i + 1, generation: 0, node: '', worker: null, started: false, everStarted: false, forkedAt: 0, deathsInARow: 0, timer: null,
  }));
  const admin = await serveAdminProxy(config, log, () => slots.filter((s) => s.started).map((s) => workerSocketPath(config.dataDir, s.n)));
  const metrics = config.listen.metrics ? new ClusterMetrics() : null;
  const metricsPort = metrics && config.listen.metrics ? await metrics.listen(config.listen.metrics.host, config.listen.metrics.port) : null;
  let stopping = false;
  let announced = false;

  const fork = (slot: Slot) => {
    slot.timer = null;
    slot.node = slot.generation === 0 ? `${base}-w${slot.n}` : `${base}-w${slot.n}-${slot.generation}`;
    slot.started = false;
    slot.forkedAt = Date.now();
    const w = cluster.fork({ [WORKER_ENV]: String(slot.n), PERCH_NODE_ID: slot.node });
    slot.worker = w;
    w.on('message', (m: unknown) => {
      if ((m as StartedMessage | null)?.perch !== 'started') return;
      const started = m as StartedMessage;
      slot.started = slot.everStarted = true;
      log.info('worker started', { worker: slot.n, node: started.node, pid: w.process.pid });
      if (!announced && slots.every((s) => s.started)) {
        announced = true;
        log.info('workers started', {
          workers: slots.length, nodes: slots.map((s) => s.node), pids: slots.map((s) => s.worker?.process.pid),
          ports: { ...started.ports, ...(metricsPort !== null ? { metrics: metricsPort } : {}) },
        });
      }
    });
    w.on('exit', (code, signal) => exited(slot, w, code, signal));
  };

  const exited = (slot: Slot, w: Worker, code: number | null, signal: string | null) => {
    if (slot.worker !== w) return;
    slot.worker = null;
    slot.started = false;
    if (stopping) return;
    if (!slot.everStarted && slot.generation === 0) {
      // The first start failed (a port in use, a database refusing): as one process would, stop.
      log.error('a worker failed to start; stopping', { worker: slot.n, node: slot.node, code, signal });
      void stop('worker start failed', 1);
      return;
    }
    // A drained worker exits 0: its slot starts a fresh node at once.
    const drained = code === 0 && signal === null;
    slot.deathsInARow = drained || Date.now() - slot.forkedAt > RAN_LONG_MS ? 0 : slot.deathsInARow + 1;
    const delay = drained ? 0 : Math.min(RESTART_MAX_MS, RESTART_FIRST_MS * 2 ** Math.max(0, slot.deathsInARow - 1));
    log[drained ? 'info' : 'warn']('worker exited; starting it again', { worker: slot.n, node: slot.node, code, signal, inMs: delay });
    slot.generation++;
    slot.timer = setTimeout(() => fork(slot), delay);
  };

  const stop = async (reason: string, failed = 0) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { reason });
    for (const s of slots) if (s.timer) clearTimeout(s.timer);
    // Every worker drains as a single node does on SIGTERM (sessions told, archive flushed).
    const exits = slots.flatMap((s) => {
      const w = s.worker;
      if (!w) return [];
      const done = new Promise<boolean>((resolve) => w.once('exit', (code) => resolve(code === 0)));
      w.process.kill('SIGTERM');
      return [done];
    });
    const killer = setTimeout(() => {
      log.error('workers still running; killing them', { timeoutMs: STOP_TIMEOUT_MS });
      for (const s of slots) s.worker?.process.kill('SIGKILL');
    }, STOP_TIMEOUT_MS);
    const clean = (await Promise.all(exits)).every(Boolean);
    clearTimeout(killer);
    await admin.close();
    await metrics?.close();
    log.info('perch stopped', { clean });
    process.exit(failed || (clean ? 0 : 1));
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  for (const s of slots) fork(s);
  return -1;
}

/**
 * The data directory's admin socket and pid file, held by the primary: each CLI connection is
 * forwarded to a started worker's own socket (the next in turn; the one after when it does not answer).
 */
async function serveAdminProxy(config: Config, log: Logger, targets: () => string[]): Promise<{ close(): Promise<void> }> {
  const dir = config.dataDir;
  const path = socketPath(dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (await answers(path)) {
    log.error('admin socket not served: another server answers on it', { path });
    return { close: async () => {} };
  }
  const pidFile = pidPath(dir);
  await writeFile(pidFile, `${process.pid}\n`, { mode: 0o600 });
  const releasePid = async () => {
    if ((await readFile(pidFile, 'utf8').catch(() => '')).trim() === String(process.pid)) await unlink(pidFile).catch(() => {});
  };
  const refusal = await notPrivate(dir);
  if (refusal) {
    log.error('admin socket not served', { reason: refusal });
    return { close: releasePid };
  }
  await unlink(path).catch(() => {});
  let turn = 0;
  const open = new Set<net.Socket>();
  const listener = net.createServer((cli) => {
    open.add(cli);
    cli.once('close', () => open.delete(cli));
    cli.on('error', () => {});
    cli.pause();
    const all = targets();
    const first = turn++;
    const attempt = (i: number) => {
      if (i >= all.length || cli.destroyed) { cli.destroy(); return; }
      const up = net.connect(all[(first + i) % all.length]!);
      up.once('error', () => { up.destroy(); attempt(i + 1); });
      up.once('connect', () => {
        up.removeAllListeners('error');
        up.on('error', () => cli.destroy());
        up.once('close', () => cli.destroy());
        cli.once('close', () => up.destroy());
        cli.pipe(up);
        up.pipe(cli);
        cli.resume();
      });
    };
    attempt(0);
  });
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(path, () => { listener.off('error', reject); resolve(); });
    });
  } catch (e) {
    log.error('admin socket not served', { path, err: e });
    return { close: releasePid };
  } finally {
    process.umask(umask);
  }
  await chmod(path, 0o600);
  log.info('admin socket listening', { path, forwardsTo: 'a worker' });
  return {
    async close() {
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      for (const s of open) s.destroy();
      await closed;
      await releasePid();
    },
  };
}
