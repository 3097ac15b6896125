// The faults a round can inject. Each is one entry of FAULTS: inject() breaks something at the
// round's fault time and resolves once the cluster is whole again (a killed node started again, a
// cut ended). Another fault (a node drain, say) is one more registerFault() call.
import type { FaultClient } from './client.js';
import type { FaultCluster } from './cluster.js';
import { NODES } from './cluster.js';
import { sleep } from './services.js';

export interface FaultContext {
  cluster: FaultCluster;
  /** Local names of the round's rooms. */
  rooms: string[];
  /** Node holding the first room when the fault starts. */
  ownerNode: number;
  /** A node whose clients send, holding no room. */
  senderNode: number;
  /** A node whose clients only receive, holding no room. */
  recipientNode: number;
  /** How long a lasting fault (a cut) lasts. */
  durationMs: number;
  /** How long a killed node stays down before it is started again. */
  restartAfterMs: number;
  /** Resolves once every client has room traffic again, or after maxMs. */
  untilRecovered(maxMs: number): Promise<void>;
  /** How long the round waits for recovery after the fault. */
  recoverTimeoutMs: number;
  /** The round's clients, by node (clientsPerNode each). */
  clientsOn(node: number): FaultClient[];
  note(text: string): void;
}

export interface Fault {
  name: string;
  description: string;
  /**
   * The fault lasts until inject() resolves (a cut, a rolling restart): recovery is measured from its
   * end. Otherwise (a kill) from its start: the cluster must recover whether the node is back or not.
   */
  lasting?: boolean;
  inject(ctx: FaultContext): Promise<void>;
}

export const FAULTS = new Map<string, Fault>();

export function registerFault(f: Fault): void {
  FAULTS.set(f.name, f);
}

async function killAndRestart(ctx: FaultContext, node: number): Promise<void> {
  ctx.note(`kill -9 node ${node}`);
  await ctx.cluster.killNode(node);
  await sleep(ctx.restartAfterMs);
  await ctx.cluster.startNode(node);
  ctx.note(`node ${node} started again`);
}

registerFault({
  name: 'kill-owner',
  description: 'kill -9 of the node holding the rooms; it stays down until the rooms answer elsewhere (or the recovery timeout)',
  async inject(ctx) {
    // Started again at once, the node would take its own rooms back and hide how long a takeover takes.
    ctx.note(`kill -9 node ${ctx.ownerNode}`);
    await ctx.cluster.killNode(ctx.ownerNode);
    await Promise.all([sleep(ctx.restartAfterMs), ctx.untilRecovered(ctx.recoverTimeoutMs)]);
    await ctx.cluster.startNode(ctx.ownerNode);
    ctx.note(`node ${ctx.ownerNode} started again`);
  },
});

registerFault({
  name: 'kill-sender',
  description: "kill -9 of a sender's node (not the room's)",
  inject: (ctx) => killAndRestart(ctx, ctx.senderNode),
});

registerFault({
  name: 'kill-recipient',
  description: 'kill -9 of a node with receiving clients only',
  inject: (ctx) => killAndRestart(ctx, ctx.recipientNode),
});

registerFault({
  name: 'pg-restart',
  lasting: true,
  description: 'PostgreSQL restarted (pg_ctl restart -m fast)',
  async inject(ctx) {
    ctx.note('pg_ctl restart -m fast');
    await ctx.cluster.pg.pgCtl('restart');
    ctx.note('PostgreSQL back');
  },
});

registerFault({
  name: 'redis-restart',
  description: 'Redis killed and started again, empty',
  async inject(ctx) {
    ctx.note('redis-server kill -9');
    await ctx.cluster.redis.kill();
    await ctx.cluster.redis.start();
    ctx.note('redis-server started again (empty)');
  },
});

registerFault({
  name: 'redis-cut',
  lasting: true,
  description: 'the room\'s node cut off from Redis for the fault duration',
  async inject(ctx) {
    const proxy = ctx.cluster.proxies[ctx.ownerNode]!;
    ctx.note(`node ${ctx.ownerNode} cut off from Redis`);
    await proxy.cut('refuse');
    await sleep(ctx.durationMs);
    await proxy.heal();
    ctx.note(`node ${ctx.ownerNode} reaches Redis again`);
  },
});

registerFault({
  name: 'rolling-restart',
  lasting: true,
  description: 'each node in turn stopped (SIGTERM) and started again',
  async inject(ctx) {
    for (let i = 0; i < NODES; i++) {
      ctx.note(`SIGTERM node ${i}`);
      await ctx.cluster.stopNode(i);
      await ctx.cluster.startNode(i);
      ctx.note(`node ${i} started again`);
    }
  },
});

registerFault({
  name: 'client-drop',
  description: "the TCP connections of every client of the rooms' node dropped (they resume)",
  async inject(ctx) {
    const clients = ctx.clientsOn(ctx.ownerNode);
    ctx.note(`dropped the connections of ${clients.length} clients of node ${ctx.ownerNode}`);
    for (const c of clients) c.dropConnection();
  },
});

export const DEFAULT_FAULTS = ['client-drop', 'kill-owner', 'kill-sender', 'kill-recipient', 'pg-restart', 'redis-restart', 'redis-cut', 'rolling-restart'];
