/**
 * Where the session store's Redis is and how to reach it: one server (`redis://`, `rediss://`), a
 * master watched by Sentinel (`redis+sentinel://h1:p1,h2:p2/mastername`) or a Redis Cluster
 * (`redis+cluster://h1:p1,h2:p2`). The rest of the store sees one RedisLink whatever the kind: a
 * command connection, a subscriber connection, publish/subscribe (sharded SPUBLISH/SSUBSCRIBE on a
 * Cluster, so a channel's traffic stays on its shard instead of crossing the whole cluster bus), and
 * key names whose hash tags keep every multi-key script on one slot of a Cluster.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { SentinelReport } from './types.js';

export type RedisClient = Redis | Cluster;

interface HostPort {
  host: string;
  port: number;
}

export type RedisTarget =
  | { kind: 'server'; url: string }
  | { kind: 'sentinel'; sentinels: HostPort[]; name: string; username?: string; password?: string; db: number }
  | { kind: 'cluster'; nodes: HostPort[]; username?: string; password?: string };

/** Why a Redis URL cannot be used; the message names what is wrong. */
export class RedisUrlError extends Error {}

/** Reads any of the three URL forms; throws RedisUrlError with the reason. */
export function parseRedisUrl(url: string): RedisTarget {
  if (/^rediss?:\/\//.test(url)) return { kind: 'server', url };
  const m = /^redis\+(sentinel|cluster):\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?#]+)(?:\/([^/?#]*)(?:\/(\d+))?)?\/?$/.exec(url);
  if (!m) throw new RedisUrlError('must be a redis://, rediss://, redis+sentinel://h1:p1,h2:p2/mastername or redis+cluster://h1:p1,h2:p2 URL');
  const [, kind, user, pass, hostList, path, db] = m;
  const hosts = hostList!.split(',').map((hp) => {
    const at = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(hp.trim());
    const port = at ? Number(at[2]) : NaN;
    if (!at || !(port > 0 && port < 65536)) throw new RedisUrlError(`"${hp}" is not host:port (every ${kind} address needs its port)`);
    return { host: at[1]!.replace(/^\[|\]$/g, ''), port };
  });
  const auth = {
    ...(user ? { username: decodeURIComponent(user) } : {}),
    ...(pass !== undefined ? { password: decodeURIComponent(pass) } : {}),
  };
  if (kind === 'cluster') {
    if (path) throw new RedisUrlError('redis+cluster:// takes no path (a Cluster has one database and no master name)');
    return { kind: 'cluster', nodes: hosts, ...auth };
  }
  if (!path) throw new RedisUrlError('redis+sentinel:// needs the master name as its path: redis+sentinel://h1:p1,h2:p2/mymaster');
  return { kind: 'sentinel', sentinels: hosts, name: decodeURIComponent(path), db: db ? Number(db) : 0, ...auth };
}

/** One client of the target; options apply to every server connection it makes. */
export function openRedisClient(target: RedisTarget, options: RedisOptions & { sharded?: boolean } = {}): RedisClient {
  const { sharded, enableAutoPipelining, ...rest } = options;
  if (target.kind === 'server') return new Redis(target.url, { ...rest, enableAutoPipelining });
  if (target.kind === 'sentinel') {
    const client = new Redis({
      ...rest,
      enableAutoPipelining,
      sentinels: target.sentinels,
      name: target.name,
      db: target.db,
      username: target.username,
      password: target.password,
      // Hears +switch-master from the sentinels and moves at once, rather than when the old master's
      // socket dies (a manual failover leaves it open, as a replica).
      failoverDetector: true,
      // A write that reached the old master after it became a replica: reconnect (to the new master) and resend.
      reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
      // The detector's way back to a sentinel that was down (ioredis tries once a minute): a sentinel
      // restarted is listened to again, and reported up, within 5 s.
      sentinelReconnectStrategy: (times: number) => Math.min(times * 500, 5000),
    });
    reportSentinels(client);
    return client;
  }
  return new Cluster(target.nodes, {
    lazyConnect: rest.lazyConnect,
    enableAutoPipelining,
    shardedSubscribers: sharded === true,
    clusterRetryStrategy: rest.retryStrategy,
    redisOptions: { ...rest, username: target.username, password: target.password },
  });
}

/** The event a Sentinel client emits with a SentinelReport. */
export const SENTINEL_EVENT = 'perch:sentinel';

type SentinelFactory = (endpoint: { host?: string; port?: number }, options?: RedisOptions) => Redis;

/**
 * ioredis's failover detector subscribes on every sentinel through clients of its own with no error
 * listener: a sentinel down printed "[ioredis] Unhandled error event" at each attempt, outside the
 * server's log, and told the server nothing. Each of those clients gets listeners that report its
 * sentinel down once per outage and up again, as SENTINEL_EVENT on the client. They are reached through
 * the connector's connectToSentinel (private in ioredis 6: test/session-store-contract.test.ts fails if
 * it goes); the detector's clients are the lazy ones, the master lookups' have a listener of their own.
 */
function reportSentinels(client: Redis): void {
  const connector = (client as unknown as { connector?: { connectToSentinel?: SentinelFactory } }).connector;
  const make = connector?.connectToSentinel;
  if (!connector || typeof make !== 'function') return;
  const downSince = new Map<string, number>();
  connector.connectToSentinel = function (this: unknown, endpoint, options) {
    const sentinel = make.call(this, endpoint, options);
    if (options?.lazyConnect) {
      const address = `${endpoint.host ?? '127.0.0.1'}:${endpoint.port ?? 26379}`;
      sentinel.on('error', (err: Error) => {
        if (downSince.has(address)) return;
        downSince.set(address, Date.now());
        client.emit(SENTINEL_EVENT, { address, up: false, error: err.message } satisfies SentinelReport);
      });
      sentinel.on('ready', () => {
        const since = downSince.get(address);
        if (since === undefined) return;
        downSince.delete(address);
        client.emit(SENTINEL_EVENT, { address, up: true, downMs: Date.now() - since } satisfies SentinelReport);
      });
    }
    return sentinel;
  };
}

/**
 * Key and channel names. On a Cluster, keys that one script touches together share a hash tag: the
 * session table's family (the table, its change channel, epoch, recovery flag and alive keys, which
 * the table's scripts touch together) is one slot. An entity's lease and shared state are tagged with
 * the entity (a room's lease and its occupants share `{muc:<service>:<room>}`), so they sit together
 * and rooms spread over the shards; counters and each node's channel land where their names hash.
 * On one server or Sentinel the names are plain, as they always were.
 */
export class RedisKeys {
  constructor(private readonly prefix: string, private readonly cluster: boolean) {}

  private family(name: string): string {
    return this.cluster ? `{${this.prefix}}${name}` : `${this.prefix}${name}`;
  }
  get sessions(): string {
    return this.family('sessions');
  }
  get changes(): string {
    return this.family('sessions:changes');
  }
  get epoch(): string {
    return this.family('epoch');
  }
  get recovering(): string {
    return this.family('recovering');
  }
  alive(node: string): string {
    return this.family(`alive:${node}`);
  }
  /** Set when another node removed this node's records for lost: tells that apart from records Redis lost. */
  droppedMark(node: string): string {
    return this.family(`dropped:${node}`);
  }
  node(node: string): string {
    return `${this.prefix}node:${node}`;
  }
  get everyone(): string {
    return `${this.prefix}nodes`;
  }
  private entity(key: string): string {
    return this.cluster ? `{${key}}` : key;
  }
  lease(key: string): string {
    return `${this.prefix}lease:${this.entity(key)}`;
  }
  state(key: string): string {
    return `${this.prefix}state:${this.entity(key)}`;
  }
  hits(key: string): string {
    return `${this.prefix}hits:${key}`;
  }
  lostAfterReset(node: string, epoch: string): string {
    return `${this.prefix}lost-after-reset:${node}:${epoch}`;
  }
}

/** The command and subscriber connections of one store, and pub/sub that fits the target. */
export class RedisLink {
  readonly cluster: boolean;
  readonly cmd: RedisClient;
  readonly sub: RedisClient;
  readonly keys: RedisKeys;
  /** The command scripts publish with: sharded on a Cluster. */
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH';

  constructor(url: string, prefix: string, common: RedisOptions) {
    const target = parseRedisUrl(url);
    this.cluster = target.kind === 'cluster';
    this.publishCommand = this.cluster ? 'SPUBLISH' : 'PUBLISH';
    this.keys = new RedisKeys(prefix, this.cluster);
    // Commands issued in the same event-loop turn leave in one write (login storms put many records at once).
    this.cmd = openRedisClient(target, { ...common, enableAutoPipelining: true });
    this.sub = openRedisClient(target, { ...common, sharded: true });
  }

  /** Number of subscribers that heard it (on a Cluster: on the channel's shard, where they all are). */
  publish(channel: string, message: string): Promise<number> {
    return this.cluster ? this.cmd.spublish(channel, message).then(Number) : this.cmd.publish(channel, message);
  }

  async subscribe(channels: string[]): Promise<void> {
    // SSUBSCRIBE takes channels of one slot per call.
    if (this.cluster) await Promise.all(channels.map((c) => this.sub.ssubscribe(c)));
    else await this.sub.subscribe(...channels);
  }

  onMessage(handler: (channel: string, message: string) => void): void {
    this.sub.on(this.cluster ? 'smessage' : 'message', handler);
  }

  /** Sentinels lost and found again (Sentinel only; the command connection's detector speaks for both). */
  onSentinel(handler: (report: SentinelReport) => void): void {
    this.cmd.on(SENTINEL_EVENT, handler);
  }
}

/** Publishes one payload to every node without joining the cluster (a CLI on a machine that runs no node). */
export async function broadcastToNodes(url: string, payload: string, prefix = 'perch:'): Promise<number> {
  const target = parseRedisUrl(url);
  const keys = new RedisKeys(prefix, target.kind === 'cluster');
  const client = openRedisClient(target, { lazyConnect: true, maxRetriesPerRequest: 1 });
  // The failure reaches the caller through the rejected command; no "Unhandled error event".
  client.on('error', () => {});
  try {
    await client.connect();
    return Number(target.kind === 'cluster' ? await client.spublish(keys.everyone, payload) : await client.publish(keys.everyone, payload));
  } finally {
    client.disconnect();
  }
}

/** Closes a client after its pending replies, and with it every connection its connector keeps. */
export async function quit(r: RedisClient): Promise<void> {
  if (r.status === 'end') return;
  try {
    await r.quit();
  } catch {
    // Unreachable: nothing pending can be answered; disconnect below closes what is left.
  }
  // QUIT ends the connection to the server, not the Sentinel connector's failover detector: its subscriptions
  // to every sentinel stay open and, with no error handler, reconnect forever. Only disconnect() cleans it up.
  // (A Cluster's quit ends every node; disconnecting after it would leave its status 'disconnecting'.)
  if (r instanceof Redis) r.disconnect();
}
