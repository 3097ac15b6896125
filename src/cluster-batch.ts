// Sends to other nodes, coalesced: what this node sends to one node while it handles one event (a
// writer batch's commits and their fan-out, one socket read) leaves in one publish when that node
// reads batches. Per node the envelopes keep their order, batched or not. A node that has not said it
// reads batches (one still running the version before them, during a rolling upgrade) gets each
// envelope alone, in the form it has always read; what fails is reported per envelope, as before.
import { encodeBatch, type ClusterEnvelope } from './cluster-message.js';

/** Envelopes per publish at most: a writer batch's fan-out is thousands; the receiving node reads each publish in one go. */
const MAX_BATCH = 1000;

interface Outgoing { env: ClusterEnvelope; onFail: ((e: unknown) => void) | undefined }

export class ClusterOutbox {
  private readonly queues = new Map<string, Outgoing[]>();
  private scheduled = false;
  /** Nodes that said they read batches. */
  private readonly batching = new Set<string>();
  /** Publishes made and envelopes in them (metrics, benchmarks). */
  publishes = 0;
  envelopes = 0;

  constructor(private readonly send: (node: string, payload: string) => Promise<void>) {}

  /** Whether node reads batches (it said so; forgotten when it is lost). */
  readsBatches(node: string, yes: boolean): void {
    if (yes) this.batching.add(node);
    else this.batching.delete(node);
  }

  /** Queues env for node; sent at the end of this turn. onFail: it did not reach the node. */
  push(node: string, env: ClusterEnvelope, onFail?: (e: unknown) => void): void {
    let q = this.queues.get(node);
    if (!q) this.queues.set(node, (q = []));
    q.push({ env, onFail });
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const queues = [...this.queues];
    this.queues.clear();
    for (const [node, q] of queues) {
      this.envelopes += q.length;
      if (q.length === 1 || !this.batching.has(node)) {
        for (const o of q) this.publish(node, JSON.stringify(o.env), [o]);
      } else {
        for (let i = 0; i < q.length; i += MAX_BATCH) {
          const part = q.length <= MAX_BATCH ? q : q.slice(i, i + MAX_BATCH);
          this.publish(node, encodeBatch(part.map((o) => o.env)), part);
        }
      }
    }
  }

  private publish(node: string, payload: string, q: Outgoing[]): void {
    this.publishes++;
    this.send(node, payload).catch((e: unknown) => {
      for (const o of q) o.onFail?.(e);
    });
  }
}
