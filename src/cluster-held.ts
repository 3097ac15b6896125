// Messages for sessions on a node that cannot be reached right now (it, or this node, is cut off from
// Redis) that are kept already: a room's message, committed before it is fanned out, or a one-to-one
// message the recipient's archive holds. Bouncing one would tell its sender "not kept" about a kept
// message; dropping it would leave a connected recipient without it. It is held, per destination
// node and in order, and sent again once the node can be reached; while a node has messages held,
// later kept messages for it queue behind them. Given up when the node is declared lost (its sessions
// are gone; the clients catch up through MAM) or after HELD_MAX_MS.
import type { Logger } from './log.js';

/** How often a node with held messages is tried again. */
const RETRY_MS = 500;
/** Held longer than this (the node never came back nor was declared lost): dropped. */
const HELD_MAX_MS = 120_000;
/** Per node: past this many held messages the oldest are dropped. */
const HELD_MAX = 20_000;

/** since: the recipient session's bind time when it was held (a session bound again later is another one). */
interface Held { payload: string; at: number; to: string; since: number | undefined }

export class HeldForNodes {
  private readonly held = new Map<string, Held[]>();
  private readonly pumping = new Set<string>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly send: (node: string, payload: string) => Promise<void>,
    /** The bind time of the session of this full JID now, if there is one. */
    private readonly sessionSince: (full: string) => number | undefined,
    private readonly log: Logger,
  ) {}

  /** Does node have messages waiting (a new one must queue behind them)? */
  has(node: string): boolean {
    return this.held.has(node);
  }

  hold(node: string, payload: string, to: string, since: number | undefined): void {
    let q = this.held.get(node);
    if (!q) {
      this.held.set(node, (q = []));
      this.log.warn('cluster: node cannot be reached; holding kept messages for it', { to: node });
    }
    q.push({ payload, at: Date.now(), to, since });
    if (q.length > HELD_MAX) q.splice(0, q.length - HELD_MAX);
    if (!this.timer) {
      this.timer = setInterval(() => { for (const n of this.held.keys()) void this.pump(n); }, RETRY_MS);
      this.timer.unref();
    }
  }

  /** Sends node's held messages in order; stops at the first failure (tried again later). */
  private async pump(node: string): Promise<void> {
    if (this.pumping.has(node)) return;
    this.pumping.add(node);
    let sent = 0;
    try {
      for (;;) {
        const q = this.held.get(node);
        if (!q || q.length === 0) {
          this.held.delete(node);
          break;
        }
        const head = q[0]!;
        if (Date.now() - head.at > HELD_MAX_MS) {
          this.log.warn('cluster: messages held too long for a node; dropped', { to: node, count: q.length });
          this.held.delete(node);
          break;
        }
        // Its session ended meanwhile (or was bound again, as after a restart of its node): the client
        // catches up through MAM; sent live now, it would come after what the new session saw.
        if (this.sessionSince(head.to) !== head.since) {
          q.shift();
          continue;
        }
        try {
          await this.send(node, head.payload);
        } catch {
          return;
        }
        q.shift();
        sent++;
      }
      if (sent > 0) this.log.info('cluster: held messages sent', { to: node, count: sent });
    } finally {
      this.pumping.delete(node);
      if (this.held.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    }
  }

  /** The node was declared lost: its sessions are gone, what was held for them too. */
  drop(node: string): void {
    const q = this.held.get(node);
    if (!q) return;
    this.held.delete(node);
    this.log.info('cluster: node lost; messages held for it dropped', { to: node, count: q.length });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.held.clear();
  }
}
