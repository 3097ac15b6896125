// Rounds of the fault-injection kit (conformance/faults/) on Perch nodes whose Redis is a Sentinel set
// or a Redis Cluster (test/redis-topologies.ts) instead of the kit's one private Redis: the same
// clients (stream management, resending what was not acknowledged), the same checks (every
// acknowledged message archived and delivered exactly once, one order per room). PostgreSQL is a
// database of the suite's own on the shared server.
import pg from 'pg';
import { startServer, type RunningServer } from './harness.js';
import { MUC_DOMAIN, NODES, type FaultCluster } from './faults/cluster.js';
import { faultUsers } from './faults/run.js';
import { runRound, type RoundResult } from './faults/round.js';
import type { Fault } from './faults/faults.js';
import { RedisKeys, openRedisClient, parseRedisUrl } from '../storage/redis-connection.js';

/** The short form: about 20 s a round, as conformance/faults.test.ts. */
const ROUND = {
  rate: 4, clientsPerNode: 2, warmupMs: 2000, afterFaultMs: 3000, recoverTimeoutMs: 25_000, settleMs: 6000,
  durationMs: 8000, restartAfterMs: 3000,
};

/** NODES Perch processes on one Redis URL and one PostgreSQL database, shaped as the kit's cluster. */
export class TopologyCluster {
  readonly nodes: (RunningServer | null)[] = [];
  readonly nodeIds: string[];
  private readonly pool: pg.Pool;
  readonly pg: { query<T>(sql: string, params: unknown[]): Promise<T[]> };

  constructor(readonly redisUrl: string, readonly databaseUrl: string, tag: string) {
    this.nodeIds = Array.from({ length: NODES }, (_, i) => `${tag}-n${i}`);
    this.pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
    this.pg = { query: async <T>(sql: string, params: unknown[]) => (await this.pool.query(sql, params)).rows as T[] };
  }

  async start(): Promise<void> {
    const users = Object.fromEntries(faultUsers(ROUND.clientsPerNode).map((u) => [u, 'pw']));
    for (let i = 0; i < NODES; i++) {
      this.nodes[i] = await startServer({
        databaseUrl: this.databaseUrl, redisUrl: this.redisUrl, nodeId: this.nodeIds[i], users, skipUserCreation: i > 0,
        startTimeoutMs: 60_000,
      });
    }
  }

  livePorts(): (number | null)[] {
    return this.nodes.map((n) => (n && n.process.exitCode === null && n.process.signalCode === null ? n.ports.c2s : null));
  }

  /** Nothing to restore: these rounds break Redis, not the nodes. */
  async makeWhole(): Promise<void> {}

  async roomHolder(roomLocal: string): Promise<number | null> {
    const target = parseRedisUrl(this.redisUrl);
    const r = openRedisClient(target, { lazyConnect: true, maxRetriesPerRequest: 1 });
    r.on('error', () => {});
    try {
      await r.connect();
      const holder = await r.get(new RedisKeys('perch:', target.kind === 'cluster').lease(`muc:${MUC_DOMAIN}:${roomLocal}`));
      const i = holder === null ? -1 : this.nodeIds.indexOf(holder);
      return i === -1 ? null : i;
    } catch {
      return null;
    } finally {
      r.disconnect();
    }
  }

  round(fault: Fault, n = 1): Promise<RoundResult> {
    // PERCH_ROUND_LOG=1: what the round does, as it happens.
    const log = process.env.PERCH_ROUND_LOG ? { log: (l: string) => console.log(`      ${new Date().toISOString().slice(11, 23)} ${l}`) } : {};
    return runRound(this as unknown as FaultCluster, fault, n, { ...ROUND, users: faultUsers(ROUND.clientsPerNode), password: 'pw', ...log });
  }

  /** Lines the nodes logged at warn level or above. */
  warnings(): string[] {
    return this.nodes.flatMap((n) => (n ? n.logs.filter((l) => /"level":"(warn|error|fatal)"|Unhandled/.test(l)) : []));
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n?.kill()));
    await this.pool.end();
  }
}
