/**
 * What every part of the Redis session store shares (storage/session-redis.ts is the store): its
 * options, the connections (RedisLink), the handlers modules register, reachability reporting,
 * timers, and the wait for a write's own change to come back on the change stream.
 */
import { randomUUID } from 'node:crypto';
import { MirroredSessionStore, callAll } from './session-memory.js';
import { RedisLink, type RedisKeys } from './redis-connection.js';
import type { Script } from './redis-scripts.js';
import type { SentinelReport, SessionRecord, StoreHealth, StoreReset } from './types.js';

export interface RedisSessionStoreOptions {
  /** redis://, rediss://, redis+sentinel://h1:p1,h2:p2/mastername or redis+cluster://h1:p1,h2:p2. */
  url: string;
  nodeId: string;
  /** Key and channel prefix; default 'perch:'. */
  prefix?: string;
  /** How often this node refreshes its alive key; default 3000. */
  heartbeatMs?: number;
  /** Alive key TTL: a node silent this long is lost; default 10000. */
  aliveTtlMs?: number;
  /** How often to look for lost nodes; default 5000. */
  checkMs?: number;
  /** After Redis came back empty: how long free leases are held back and other nodes' records kept; default 2000. */
  recoveryWindowMs?: number;
  /** How long send() retries a node nobody listens for before it rejects; default 1500. */
  sendRetryMs?: number;
  /**
   * A heartbeat unanswered this long means the connection is dead without having closed (a network
   * that drops packets): both connections are dropped and made again; default 3000.
   */
  stallMs?: number;
}

export type Change = { src: string; seq: number } & (
  | { op: 'put'; rec: SessionRecord }
  | { op: 'del'; jid: string; node: string }
  | { op: 'drop'; node: string; jids: string[] }
);

// A write whose change never comes back (subscription down) must not hang its caller.
const ECHO_TIMEOUT_MS = 2000;
export const DROP_CHUNK = 500;

export abstract class RedisStoreBase extends MirroredSessionStore {
  protected readonly heartbeatMs: number;
  protected readonly aliveTtlMs: number;
  protected readonly checkMs: number;
  protected readonly recoveryWindowMs: number;
  protected readonly sendRetryMs: number;
  protected readonly stallMs: number;
  protected readonly link: RedisLink;
  protected readonly keys: RedisKeys;
  protected readonly lostHandlers: ((node: string, records: SessionRecord[]) => void)[] = [];
  protected readonly healthHandlers: ((health: StoreHealth) => void)[] = [];
  protected readonly resetHandlers: ((reset: StoreReset) => void | Promise<void>)[] = [];
  /** Identifies this instance's own changes on the stream. */
  protected readonly src = randomUUID();
  private seq = 0;
  protected readonly waiting = new Map<number, () => void>();
  protected timers: NodeJS.Timeout[] = [];
  protected starting: Promise<void> | null = null;
  protected started = false;
  protected closing: Promise<void> | null = null;
  /** Since when Redis is unreachable; null while it answers. */
  protected downSince: number | null = null;

  constructor(opts: RedisSessionStoreOptions) {
    super(opts.nodeId);
    this.heartbeatMs = opts.heartbeatMs ?? 3000;
    this.aliveTtlMs = opts.aliveTtlMs ?? 10_000;
    this.checkMs = opts.checkMs ?? 5000;
    this.recoveryWindowMs = opts.recoveryWindowMs ?? 2000;
    this.sendRetryMs = opts.sendRetryMs ?? 1500;
    this.stallMs = opts.stallMs ?? 3000;
    // A command waits for a few reconnection attempts (a restart takes well under a second), then
    // fails, so callers answer with an error instead of hanging while Redis is cut off.
    this.link = new RedisLink(opts.url, opts.prefix ?? 'perch:', {
      lazyConnect: true,
      maxRetriesPerRequest: 3,
      connectTimeout: 3000,
      retryStrategy: (times: number) => Math.min(times * 100, 1000),
    });
    this.keys = this.link.keys;
    // Without a listener ioredis prints "Unhandled error event" for every failed attempt.
    for (const r of [this.link.cmd, this.link.sub]) {
      r.on('error', (err: Error) => this.markDown(err.message));
      r.on('close', () => this.markDown('connection closed'));
    }
  }

  protected markDown(error: string): void {
    if (!this.started || this.closing || this.downSince !== null) return;
    this.downSince = Date.now();
    callAll(this.healthHandlers, { up: false, error });
  }

  protected markUp(): void {
    if (this.downSince === null) return;
    const downMs = Date.now() - this.downSince;
    this.downSince = null;
    callAll(this.healthHandlers, { up: true, downMs });
  }

  protected run(script: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    return script.run(this.link.cmd, keys, args);
  }

  protected async emitReset(reset: StoreReset): Promise<void> {
    for (const h of this.resetHandlers) {
      try {
        await h(reset);
      } catch (err) {
        console.error('session store reset handler failed:', err);
      }
    }
  }

  /** Registers for the echo of a change before it is written (the echo may beat the reply). */
  protected expectEcho(): { seq: number; echoed: Promise<void>; cancel: () => void } {
    const seq = ++this.seq;
    let timer: NodeJS.Timeout | undefined;
    const echoed = new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiting.delete(seq);
        resolve();
      };
      this.waiting.set(seq, done);
      timer = setTimeout(done, ECHO_TIMEOUT_MS);
      timer.unref();
    });
    return { seq, echoed, cancel: () => this.waiting.get(seq)?.() };
  }

  protected every(ms: number, fn: () => Promise<unknown>): void {
    const t = setInterval(() => void fn().catch(() => {}), ms);
    t.unref();
    this.timers.push(t);
  }

  protected stopTimers(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  onNodeLost(handler: (node: string, records: SessionRecord[]) => void): void {
    this.lostHandlers.push(handler);
  }

  onHealth(handler: (health: StoreHealth) => void): void {
    this.healthHandlers.push(handler);
  }

  onSentinel(handler: (report: SentinelReport) => void): void {
    this.link.onSentinel(handler);
  }

  onReset(handler: (reset: StoreReset) => void | Promise<void>): void {
    this.resetHandlers.push(handler);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function parseJson<T>(s: string): T | null {
  try {
    return JSON.parse(s) as T;
  } catch {
    return null;
  }
}
