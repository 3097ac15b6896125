// Stream management (XEP-0198) for one client session: the counters of what each side handled, the
// stanzas the client has not acknowledged yet, and the <enable/>, <r/>, <a/> and <resumed/> elements.
// The session keeps the connection and its lifecycle (waiting for resumption, ending); this keeps
// the protocol state, so a session over any transport gets the same behaviour.
import { randomBytes } from 'node:crypto';
import { Element, type Attrs } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { readStanzaHead } from '../../protocol/stanza-head.js';
import type { Transport } from '../transport/transport.js';
import type { CompletionSource, Done } from './completion.js';

/** A stanza sent to the client and not acknowledged yet, as written and by element name. */
export interface Unacked {
  xml: string;
  name: string;
}

export interface StreamManagementOptions {
  /** How long a resumable session waits for its client (XEP-0198 'max'); 0 disables resumption. */
  resumeSeconds: number;
  /** The client enabled resumption under this id. */
  resumable(id: string): void;
  /** Writes to the client's current connection, if it has one (late <a/> answers). */
  write(xml: string): void;
}

/** An ack request is sent after this many unacknowledged stanzas. */
const ACK_REQUEST_EVERY = 10;
/** Answers to IQ requests remembered while unacknowledged stanzas wait (bounds a client that never acks). */
const MAX_ANSWERED = 1000;
/** How long an <r/> waits for stanzas still being handled before it is answered with what is safe. */
const ACK_WAIT_MS = 2000;

export function smFailed(condition: string): Element {
  const f = new Element('failed', { xmlns: NS.sm });
  f.c(condition, { xmlns: NS.stanzaErrors });
  return f;
}

export class StreamManagement implements CompletionSource {
  enabled = false;
  /** Resumption id, while the session may be resumed. */
  id: string | null = null;
  /**
   * Stanzas received from the client since <enable/>. The h we report counts only those whose handling
   * is complete, and only the longest complete prefix: pending holds the numbers of those still being
   * handled, in increasing order (a Set keeps insertion order), so h is one less than the first of them.
   */
  private received = 0;
  private readonly pendingIn = new Set<number>();
  /** <r/> requests waiting for pending stanzas (answered when they complete, or after ACK_WAIT_MS). */
  private waitingRequests = 0;
  private readonly settleWaiters: (() => void)[] = [];
  /** Waiting for the client's next <a/> (a planned close asks what it received). */
  private readonly ackWaiters: (() => void)[] = [];
  private ackTimer: NodeJS.Timeout | null = null;
  /** The client's last h: stanzas of ours it has confirmed, modulo 2^32. */
  private ackedOut = 0;
  private unacked: Unacked[] = [];
  private ackRequestPending = false;
  /** IQ requests (peer, id) the client answered while stanzas of ours were unacknowledged. */
  private answered = new Set<string>();

  constructor(private readonly opts: StreamManagementOptions) {}

  /**
   * One stanza from the client arrived: its number, counted from <enable/> on (XEP-0198 §4: h starts
   * at zero there), or 0 when stream management is off. It is complete unless pending(seq) is called.
   */
  receive(): number {
    return this.enabled ? ++this.received : 0;
  }

  /** The stanza numbered seq is still being handled: h stops before it until the returned function runs. */
  pending(seq: number): Done {
    this.pendingIn.add(seq);
    return () => this.complete(seq);
  }

  private complete(seq: number): void {
    if (!this.pendingIn.delete(seq)) return;
    if (this.pendingIn.size === 0) {
      if (this.waitingRequests > 0) this.answerRequests();
      for (const settle of this.settleWaiters.splice(0)) settle();
    }
  }

  /**
   * Asks the client to confirm what it received (an <r/>) and resolves on its <a/>, or after maxMs; at
   * once when nothing is unconfirmed. Before a planned close: what it confirms is not sent again (to
   * offline storage, then to it) after it reconnects.
   */
  confirmReceived(conn: Transport, maxMs: number): Promise<void> {
    if (!this.enabled || this.unacked.length === 0) return Promise.resolve();
    conn.write(`<r xmlns='${NS.sm}'/>`);
    this.ackRequestPending = true;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, maxMs);
      this.ackWaiters.push(() => { clearTimeout(timer); resolve(); });
    });
  }

  /** Resolves once nothing received is still being handled, or after maxMs (a planned close waits on it). */
  settled(maxMs: number): Promise<void> {
    if (this.pendingIn.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, maxMs);
      this.settleWaiters.push(() => { clearTimeout(timer); resolve(); });
    });
  }

  /** What we report as handled: the longest prefix of received stanzas whose handling is complete. */
  get handledIn(): number {
    if (this.pendingIn.size === 0) return this.received;
    return this.pendingIn.values().next().value! - 1;
  }

  /** Stanzas received and not complete yet (tests, metrics). */
  get pendingCount(): number {
    return this.pendingIn.size;
  }

  private answerRequests(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    const a = `<a xmlns='${NS.sm}' h='${this.handledIn >>> 0}'/>`;
    for (; this.waitingRequests > 0; this.waitingRequests--) this.opts.write(a);
  }

  /** Stops waiting (the session ended): late completions change nothing anyone reads. */
  stop(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    this.waitingRequests = 0;
  }

  /** An <a/> for what was handled so far, or null when stream management is off (sent before a planned close). */
  ack(): string | null {
    return this.enabled ? `<a xmlns='${NS.sm}' h='${this.handledIn >>> 0}'/>` : null;
  }

  /** One stanza went to the client (or would have, with no connection): kept until acknowledged. */
  sent(xml: string, name: string): void {
    if (this.enabled) this.unacked.push({ xml, name });
  }

  /**
   * The client answered an IQ request from peer: it received the request even if it never acknowledges
   * it, so the request is not bounced when the session ends (the requester would get two answers).
   */
  answeredIq(peer: string, id: string): void {
    if (!this.enabled || this.unacked.length === 0) return;
    if (this.answered.size >= MAX_ANSWERED) this.answered.delete(this.answered.values().next().value!);
    this.answered.add(`${peer}\n${id}`);
  }

  /** An <r/> to write after what was just sent, when enough is unacknowledged and none is pending. */
  ackRequestDue(): string | null {
    if (!this.enabled || this.unacked.length < ACK_REQUEST_EVERY || this.ackRequestPending) return null;
    this.ackRequestPending = true;
    return `<r xmlns='${NS.sm}'/>`;
  }

  /** An element in the XEP-0198 namespace from the bound client. */
  element(el: Element, conn: Transport): void {
    switch (el.name) {
      case 'enable': {
        if (this.enabled) return conn.send(smFailed('unexpected-request'));
        this.enabled = true;
        const attrs: Attrs = { xmlns: NS.sm };
        if (el.attrs.resume === 'true' || el.attrs.resume === '1') {
          this.id = randomBytes(12).toString('base64url');
          attrs.id = this.id;
          attrs.resume = 'true';
          attrs.max = String(this.opts.resumeSeconds);
          this.opts.resumable(this.id);
        }
        conn.write(new Element('enabled', attrs).toString());
        return;
      }
      case 'r':
        if (this.pendingIn.size === 0) {
          conn.write(`<a xmlns='${NS.sm}' h='${this.handledIn >>> 0}'/>`);
          return;
        }
        // Stanzas still being handled (a room commit on another node, a store): the answer waits a
        // little for them rather than reporting less than the client is about to see handled.
        this.waitingRequests++;
        if (!this.ackTimer) {
          this.ackTimer = setTimeout(() => this.answerRequests(), ACK_WAIT_MS);
          this.ackTimer.unref();
        }
        return;
      case 'a':
        this.ackRequestPending = false;
        this.acknowledge(Number(el.attrs.h), conn);
        for (const done of this.ackWaiters.splice(0)) done();
        return;
    }
    conn.streamError('unsupported-stanza-type', `unexpected <${el.name}> of stream management`);
  }

  /** Drops what the client confirms with h; false (after a stream error) when h is not believable. */
  private acknowledge(h: number, conn: Transport): boolean {
    if (!Number.isFinite(h)) return false;
    // h counts modulo 2^32; how many of our unacked stanzas the peer now confirms.
    const confirmed = (h - this.ackedOut) >>> 0;
    if (confirmed > this.unacked.length) {
      // XEP-0198 §5: the condition names what the peer claimed and what was sent.
      conn.streamError('undefined-condition', 'acknowledged more stanzas than were sent',
        new Element('handled-count-too-high', { xmlns: NS.sm, h: String(h >>> 0), 'send-count': String((this.ackedOut + this.unacked.length) >>> 0) }));
      return false;
    }
    this.unacked.splice(0, confirmed);
    if (this.unacked.length === 0) this.answered.clear();
    this.ackedOut = h >>> 0;
    return true;
  }

  /** Resumes on a new connection: confirms up to h, answers <resumed/> and sends the rest again. */
  resume(conn: Transport, h: number): boolean {
    if (!this.acknowledge(h, conn)) return false;
    conn.write(`<resumed xmlns='${NS.sm}' previd='${this.id}' h='${this.handledIn >>> 0}'/>`);
    for (const s of this.unacked) conn.write(s.xml);
    return true;
  }

  /** Whether a lost connection should wait for resumption rather than end the session. */
  get resumeWanted(): boolean {
    return this.id !== null && this.opts.resumeSeconds > 0;
  }

  /** What the client never acknowledged (less the IQ requests it answered), handed over once when the session ends. */
  takeUnacked(): Unacked[] {
    const answered = this.answered;
    const out = answered.size === 0 ? this.unacked : this.unacked.filter((u) => {
      if (u.name !== 'iq') return true;
      const head = readStanzaHead(u.xml);
      return !head || !answered.has(`${head.attrs.from ?? ''}\n${head.attrs.id ?? ''}`);
    });
    this.unacked = [];
    this.answered = new Set();
    return out;
  }
}
