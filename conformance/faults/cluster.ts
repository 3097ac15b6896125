// Three Perch nodes as separate processes on a private PostgreSQL cluster and a private Redis, each
// node reaching Redis through its own proxy (services.ts) so that one node alone can be cut off.
import { writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { RedisKeys } from '../../storage/redis-connection.js';
import { startServer, type RunningServer } from '../harness.js';
import { FaultProxy, PrivatePostgres, PrivateRedis } from './services.js';

export const NODES = 3;
export const DOMAIN = 'localhost';
export const MUC_DOMAIN = 'conference.localhost';

export interface ClusterOptions {
  /** First of the fixed ports: Redis, PostgreSQL, then one proxy per node. */
  portBase: number;
  users: string[];
  password: string;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
}

export class FaultCluster {
  readonly nodes: (RunningServer | null)[] = Array.from({ length: NODES }, () => null);
  readonly nodeIds: string[];
  readonly proxies: FaultProxy[];
  /** Lines the nodes logged at warn level or above, kept over restarts (for the report). */
  readonly warnings: string[] = [];
  private constructor(readonly pg: PrivatePostgres, readonly redis: PrivateRedis, readonly opts: ClusterOptions) {
    this.nodeIds = Array.from({ length: NODES }, (_, i) => `faults-n${i}`);
    this.proxies = Array.from({ length: NODES }, (_, i) => new FaultProxy(opts.portBase + 2 + i, redis.port));
  }

  static async start(opts: ClusterOptions): Promise<FaultCluster> {
    const redis = new PrivateRedis(opts.portBase);
    let pgc: PrivatePostgres | null = null;
    try {
      await redis.start();
      pgc = await PrivatePostgres.start(opts.portBase + 1);
      const c = new FaultCluster(pgc, redis, opts);
      for (const p of c.proxies) await p.listen();
      try {
        for (let i = 0; i < NODES; i++) await c.startNode(i, i === 0);
      } catch (e) {
        await c.close();
        throw e;
      }
      return c;
    } catch (e) {
      pgc?.stop();
      await redis.stop();
      throw e;
    }
  }

  livePorts(): (number | null)[] {
    return this.nodes.map((n) => (n && n.process.exitCode === null && n.process.signalCode === null ? n.ports.c2s : null));
  }

  async startNode(i: number, createUsers = false): Promise<void> {
    const users = Object.fromEntries(this.opts.users.map((u) => [u, this.opts.password]));
    const node = await startServer({
      databaseUrl: this.pg.url,
      redisUrl: `redis://127.0.0.1:${this.proxies[i]!.port}`,
      nodeId: this.nodeIds[i],
      users,
      skipUserCreation: !createUsers,
      logLevel: this.opts.logLevel ?? 'info',
      startTimeoutMs: 60_000,
    });
    this.nodes[i] = node;
  }

  /** kill -9 of node i. */
  async killNode(i: number): Promise<void> {
    const n = this.nodes[i];
    this.nodes[i] = null;
    if (n) {
      this.keepWarnings(n);
      await n.kill();
    }
  }

  /** SIGTERM (the server's own shutdown), waiting until it exited. */
  async stopNode(i: number): Promise<void> {
    const n = this.nodes[i];
    this.nodes[i] = null;
    if (n) {
      this.keepWarnings(n);
      await n.stop();
    }
  }

  private keepWarnings(n: RunningServer): void {
    for (const l of n.logs) if (/"level":"(warn|error|fatal)"|Unhandled|Error/.test(l)) this.warnings.push(l);
  }

  /** Every node not running is started again (same node id), every proxy listening again. */
  async makeWhole(): Promise<void> {
    for (const p of this.proxies) await p.heal();
    for (let i = 0; i < NODES; i++) if (this.livePorts()[i] === null) {
      if (this.nodes[i]) await this.killNode(i);
      await this.startNode(i);
    }
  }

  /**
   * A clean slate after a round the cluster did not recover from, so that one fault's damage is not
   * counted against the next: every node stopped, the private Redis emptied, every node started again.
   */
  async reset(): Promise<void> {
    for (const p of this.proxies) await p.heal();
    for (let i = 0; i < NODES; i++) await this.stopNode(i);
    const r = new Redis({ host: '127.0.0.1', port: this.redis.port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    r.on('error', () => {});
    try {
      await r.connect();
      await r.flushall();
    } finally {
      r.disconnect();
    }
    for (let i = 0; i < NODES; i++) await this.startNode(i);
  }

  /** The node index holding the room's lease in Redis, or null (no holder, or not one of ours). */
  async roomHolder(roomLocal: string): Promise<number | null> {
    const r = new Redis({ host: '127.0.0.1', port: this.redis.port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    r.on('error', () => {});
    try {
      await r.connect();
      const holder = await r.get(new RedisKeys('perch:', false).lease(`muc:${MUC_DOMAIN}:${roomLocal}`));
      const i = holder === null ? -1 : this.nodeIds.indexOf(holder);
      return i === -1 ? null : i;
    } catch {
      return null;
    } finally {
      r.disconnect();
    }
  }

  allLogs(): string[] {
    const out = [...this.warnings];
    for (const n of this.nodes) if (n) this.keepWarningsInto(n, out);
    return out;
  }

  private keepWarningsInto(n: RunningServer, out: string[]): void {
    for (const l of n.logs) if (/"level":"(warn|error|fatal)"|Unhandled|Error/.test(l)) out.push(l);
  }

  async close(): Promise<void> {
    // FAULTS_LOG_DIR: every node's whole log kept there (node-<i>.log), to read what a round did.
    const dir = process.env.FAULTS_LOG_DIR;
    if (dir) for (const [i, n] of this.nodes.entries()) if (n) writeFileSync(`${dir}/node-${i}.log`, n.logs.join('\n') + '\n');
    await Promise.all(this.nodes.map((n, i) => (n ? this.killNode(i) : undefined)));
    for (const p of this.proxies) await p.close();
    await this.redis.stop();
    this.pg.stop();
  }
}
