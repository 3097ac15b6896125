// The cluster's nodes as operators see them (`perch node list`) and the drain of one node (`perch node
// drain`): it stops taking connections, hands its rooms to the other active nodes, sends its clients
// to them and exits once empty. Nodes talk about this on the cluster bus (topic 'node'): a status
// request is broadcast and every node up answers; a drain request goes to the node named.
import { createHash, randomBytes } from 'node:crypto';
import client from 'prom-client';
import type { Module, Server } from './context.js';
import { mucServices } from './muc/module.js';

const TOPIC = 'node';
/** How long a node list waits for the nodes' answers (every node up answers at once). */
export const NODE_LIST_WAIT_MS = 750;
/** How long a drain request waits for the node named to say it started. */
const DRAIN_ANSWER_MS = 5_000;
/** How long a draining node waits for its clients to go before it stops anyway. */
const CLIENTS_GONE_MS = 30_000;
/**
 * After its rooms moved and its clients went, a draining node keeps forwarding for this long: a
 * stanza another node sent it just before it learnt the room moved still reaches the room.
 */
const FORWARD_GRACE_MS = 1_000;

export interface NodeStatus {
  id: string;
  /**
   * Which cluster the node belongs to: nodes that serve the same domain from the same database. Other
   * nodes on the same Redis (a test beside another, a misconfigured node) are neither listed nor heirs.
   */
  cluster: string;
  /** The client address other nodes send clients to (cluster.publicAddress), or null. */
  address: string | null;
  sessions: number;
  rooms: number;
  state: 'active' | 'draining';
  pid: number;
  /** When the node started (ISO 8601). */
  since: string;
}

/** What a drain request started: the node, where its rooms and clients go, and what it held. */
export interface DrainStarted {
  node: string;
  /** The nodes its rooms are handed to. */
  heirs: string[];
  /** The address its clients are sent to (see-other-host), or null (system-shutdown). */
  otherHost: string | null;
  sessions: number;
  rooms: number;
  /** It was draining already (the request changed nothing). */
  already: boolean;
}

type NodeMessage =
  | { op: 'status?'; from: string; req: string }
  | { op: 'status'; req: string; status: NodeStatus }
  | { op: 'drain'; from: string; req: string }
  | { op: 'drain-started'; req: string; ok: true; started: DrainStarted }
  | { op: 'drain-started'; req: string; ok: false; error: string }
  /** Broadcast by a draining node once its rooms moved: nobody should send it room stanzas any more. */
  | { op: 'rooms-moved'; node: string };

interface Waiting { onMessage(m: NodeMessage): void }

class NodeRegistry {
  readonly since = new Date().toISOString();
  readonly waiting = new Map<string, Waiting>();
  drain: Promise<DrainStarted> | null = null;
  constructor(readonly server: Server) {}

  status(): NodeStatus {
    let rooms = 0;
    for (const s of mucServices(this.server).values()) for (const _ of s.loadedRooms()) rooms++;
    return {
      id: this.server.sessions.nodeId, cluster: clusterOf(this.server), address: this.server.node.publicAddress(), sessions: this.server.local.size, rooms,
      state: this.server.node.state, pid: process.pid, since: this.since,
    };
  }

  onMessage(m: NodeMessage): void {
    const bus = this.server.cluster;
    switch (m.op) {
      case 'status?':
        bus.send(m.from, TOPIC, { op: 'status', req: m.req, status: this.status() } satisfies NodeMessage);
        return;
      case 'drain':
        this.startDrain().then(
          (started) => bus.send(m.from, TOPIC, { op: 'drain-started', req: m.req, ok: true, started } satisfies NodeMessage),
          (e: unknown) => bus.send(m.from, TOPIC, { op: 'drain-started', req: m.req, ok: false, error: String((e as Error).message ?? e) } satisfies NodeMessage),
        );
        return;
      case 'rooms-moved':
        if (m.node === this.server.sessions.nodeId) return;
        // Forget the node as the holder of any room: the next stanza finds the room's new holder.
        for (const s of mucServices(this.server).values()) s.nodeLost(m.node, new Set());
        return;
      default:
        this.waiting.get(m.req)?.onMessage(m);
    }
  }

  /** Starts this node's drain (once); resolves when rooms and clients are on their way, not when it ends. */
  startDrain(): Promise<DrainStarted> {
    if (this.drain) return this.drain.then((d) => ({ ...d, already: true }));
    this.drain = this.runDrain();
    return this.drain;
  }

  private async runDrain(): Promise<DrainStarted> {
    const server = this.server;
    const log = server.log;
    const before = this.status();
    server.node.stopAccepting();
    const peers = (await listNodes(server)).filter((n) => n.id !== before.id && n.state === 'active');
    const heirs = peers.map((n) => n.id);
    const withAddress = peers.filter((n) => n.address);
    const otherHost = withAddress.length ? withAddress[Math.floor(Math.random() * withAddress.length)]!.address : null;
    log.info('node drain started', { heirs, otherHost, sessions: before.sessions, rooms: before.rooms });
    const started: DrainStarted = { node: before.id, heirs, otherHost, sessions: before.sessions, rooms: before.rooms, already: false };
    void this.finishDrain(heirs, otherHost).catch((e) => log.error('node drain failed', { err: e }));
    return started;
  }

  private async finishDrain(heirs: string[], otherHost: string | null): Promise<void> {
    const server = this.server;
    const t0 = Date.now();
    let moved = 0;
    for (const s of mucServices(server).values()) moved += await s.handOver(heirs);
    if (heirs.length) await server.cluster.broadcast(TOPIC, { op: 'rooms-moved', node: server.sessions.nodeId } satisfies NodeMessage);
    server.log.info('node drain: rooms handed over', { rooms: moved, ms: Date.now() - t0 });
    await server.node.moveClients(otherHost);
    const deadline = Date.now() + CLIENTS_GONE_MS;
    while ((server.local.size > 0 || server.node.connectionCount() > 0) && Date.now() < deadline) await sleep(50);
    if (server.local.size > 0) server.log.warn('node drain: clients still connected; stopping anyway', { sessions: server.local.size });
    await sleep(FORWARD_GRACE_MS);
    server.log.info('node drained; stopping', { ms: Date.now() - t0 });
    await server.node.exit();
  }

  /** Asks and waits for answers keyed by a fresh request id. */
  ask<T>(send: (req: string) => void | Promise<void>, onMessage: (m: NodeMessage, done: (v: T) => void) => void, timeoutMs: number, onTimeout: () => T): Promise<T> {
    const req = randomBytes(8).toString('hex');
    return new Promise<T>((resolve) => {
      const finish = (v: T) => { clearTimeout(timer); this.waiting.delete(req); resolve(v); };
      const timer = setTimeout(() => finish(onTimeout()), timeoutMs);
      this.waiting.set(req, { onMessage: (m) => onMessage(m, finish) });
      void Promise.resolve(send(req)).catch(() => finish(onTimeout()));
    });
  }
}

/** The domain and the database (without credentials), hashed. */
function clusterOf(server: Server): string {
  const c = server.config;
  let where = c.dataDir;
  if (c.databaseUrl) {
    const u = new URL(c.databaseUrl);
    where = `${u.hostname}:${u.port}${u.pathname}`;
  }
  return createHash('sha256').update(`${c.domain}\n${where}`).digest('hex').slice(0, 16);
}

const registries = new WeakMap<Server, NodeRegistry>();

function registry(server: Server): NodeRegistry {
  const r = registries.get(server);
  if (!r) throw new Error('the nodes module is not running');
  return r;
}

/** Every node up now, as each describes itself, sorted by id. */
export async function listNodes(server: Server, waitMs = NODE_LIST_WAIT_MS): Promise<NodeStatus[]> {
  const reg = registry(server);
  const found = new Map<string, NodeStatus>();
  const own = clusterOf(server);
  found.set(server.sessions.nodeId, reg.status());
  await reg.ask<null>(
    (req) => server.cluster.broadcast(TOPIC, { op: 'status?', from: server.sessions.nodeId, req } satisfies NodeMessage),
    (m) => { if (m.op === 'status' && m.status.cluster === own) found.set(m.status.id, m.status); },
    waitMs, () => null,
  );
  return [...found.values()].sort((a, b) => a.id.localeCompare(b.id));
}

/** Drains a node (this one when node is null or its id); resolves once it started, with what it holds. */
export async function drainNode(server: Server, node: string | null): Promise<DrainStarted | { error: string }> {
  const reg = registry(server);
  if (node === null || node === server.sessions.nodeId) return reg.startDrain();
  if (!(await listNodes(server)).some((n) => n.id === node)) return { error: `no node ${node} in this cluster (perch node list shows the nodes up)` };
  return reg.ask<DrainStarted | { error: string }>(
    (req) => server.cluster.send(node, TOPIC, { op: 'drain', from: server.sessions.nodeId, req } satisfies NodeMessage),
    (m, done) => { if (m.op === 'drain-started') done(m.ok ? m.started : { error: m.error }); },
    DRAIN_ANSWER_MS, () => ({ error: `no node ${node} answered in ${DRAIN_ANSWER_MS / 1000} s (perch node list shows the nodes up)` }),
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export const nodesModule: Module = {
  name: 'nodes',
  init(server) {
    const reg = new NodeRegistry(server);
    registries.set(server, reg);
    server.cluster.on(TOPIC, (data) => reg.onMessage(data as NodeMessage));
    new client.Gauge({
      name: 'perch_node_draining', help: '1 while this node drains (refuses connections, hands its rooms over), else 0',
      registers: [server.metrics.registry],
      collect() { this.set(server.node.state === 'draining' ? 1 : 0); },
    });
  },
};
