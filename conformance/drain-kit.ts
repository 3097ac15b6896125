// Draining nodes under load, for the drain test and the fault harness: clients with stream management
// (XEP-0198) that post numbered messages into a room and follow the server when it sends them
// elsewhere (see-other-host, system-shutdown), a drain through the CLI, and a rolling restart (drain
// each node in turn, start it again).
//
//   const nodes: ClusterNode[] = [...]           // { options, server } as startServer got and gave them
//   const report = await rollingRestart(nodes);  // nodes[i].server is the restarted process afterwards
//
// The clients speak XMPP on raw sockets so that every <a h/> is seen and counted.
import { expect } from 'chai';
import {
  connectRaw, openSecureStream, openStream, perch, startServer,
  type CliResult, type RawConnection, type RunningServer, type ServerOptions,
} from './harness.js';

const SM = 'urn:xmpp:sm:3';

/** One node of a test cluster: how it was started (to start it again) and the running process. */
export interface ClusterNode { options: ServerOptions; server: RunningServer }

export interface DrainResult {
  /** The CLI's run (`perch node drain --json` on the node's data directory). */
  cli: CliResult;
  /** The drained process's exit code (0 when it stopped on its own after draining). */
  exitCode: number | null;
  /** From the drain command to the process's exit. */
  ms: number;
}

/**
 * Drains a node as an operator would, `perch node drain --wait`: through its own admin socket, or
 * through another node's (via) naming it. Then waits for the process to exit. Fails when the CLI
 * fails or the process outlives timeoutMs.
 */
export async function drainThroughCli(node: ClusterNode, timeoutMs = 45_000, via?: ClusterNode): Promise<DrainResult> {
  const t0 = Date.now();
  const args = via ? ['node', 'drain', node.options.nodeId!, '--wait', '--json'] : ['node', 'drain', '--wait', '--json'];
  const cli = await perch(args, { dataDir: (via ?? node).server.dataDir, databaseUrl: node.options.databaseUrl, env: { PERCH_DRAIN_WAIT_MS: String(timeoutMs) } });
  expect(cli.code, `perch node drain failed:\n${cli.stdout}\n${cli.stderr}`).to.equal(0);
  let timer: NodeJS.Timeout | undefined;
  const exitCode = await Promise.race([
    node.server.exited,
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`node did not exit ${timeoutMs} ms after its drain`)), timeoutMs); }),
  ]).finally(() => clearTimeout(timer));
  const ms = Date.now() - t0;
  // Removes its data directory (the process is gone already).
  await node.server.stop();
  return { cli, exitCode, ms };
}

export interface RollingRestartReport {
  /** Per node, in order: the drain, and the time until the new process took connections. */
  steps: { nodeId: string | undefined; drain: DrainResult; restartMs: number }[];
  totalMs: number;
}

/**
 * Drains each node in turn (CLI), waits for it to exit with 0, and starts it again with the same
 * options (same node id; the accounts exist already), so the cluster is whole before the next one
 * goes. nodes[i].server is replaced by the new process. afterEach runs once a node is back (a fault
 * harness checks its clients there).
 */
export async function rollingRestart(nodes: ClusterNode[], opts: {
  afterEach?: (node: ClusterNode, index: number) => Promise<void>;
  drainTimeoutMs?: number;
  /** 'self' (default): each node's own admin socket; 'next': the next node's, naming the node by id. */
  through?: 'self' | 'next';
} = {}): Promise<RollingRestartReport> {
  const t0 = Date.now();
  const steps: RollingRestartReport['steps'] = [];
  for (const [i, node] of nodes.entries()) {
    const via = opts.through === 'next' && nodes.length > 1 ? nodes[(i + 1) % nodes.length] : undefined;
    const drain = await drainThroughCli(node, opts.drainTimeoutMs, via);
    expect(drain.exitCode, `node ${node.options.nodeId} exit code after its drain`).to.equal(0);
    const r0 = Date.now();
    node.server = await startServer({ ...node.options, skipUserCreation: true });
    steps.push({ nodeId: node.options.nodeId, drain, restartMs: Date.now() - r0 });
    await opts.afterEach?.(node, i);
  }
  return { steps, totalMs: Date.now() - t0 };
}

// --- a client that posts numbered messages into a room --------------------------------------------------

export interface Posted {
  n: number;
  /** Body and origin-id: `<client> <n>`, unique across a test. */
  body: string;
  /** Position of this stanza among those sent on the current stream (stream management's count). */
  index: number;
  /** An <a h/> covered it. */
  acked: boolean;
  /** Times it was sent (more than one: resent after a reconnection because it was not acknowledged). */
  sends: number;
}

/** What happened to a client's streams: each stream error, each resumption attempt. */
export interface StreamEvent { kind: 'stream-error' | 'resume'; detail: string; port: number; at: number }

/**
 * A client with stream management in one room: posts messages, counts what the server acknowledged,
 * and when its stream ends (see-other-host, system-shutdown, a closed socket) connects again (the
 * host it was sent to, else the next of ports()), tries to resume (a node that went away cannot:
 * item-not-found), binds a new resource, enables stream management, joins again and resends what
 * was not acknowledged, with the same origin-id.
 */
export class RoomPoster {
  readonly posted: Posted[] = [];
  readonly events: StreamEvent[] = [];
  /** Error stanzas received (a refused message, a refused join). */
  readonly errors: string[] = [];
  port = 0;
  private raw: RawConnection | null = null;
  private smId: string | null = null;
  private out = 0;
  private scanned = 0;
  private generation = 0;
  private sentTo: string | null = null;
  private lost: Promise<void> = Promise.resolve();
  private onLost: () => void = () => {};

  constructor(
    readonly name: string,
    private readonly account: { user: string; password: string },
    readonly room: string,
    readonly nick: string,
    /** c2s ports of the nodes a client may try when it is not told where to go. */
    private readonly ports: () => number[],
  ) {}

  get connected(): boolean {
    return this.raw !== null && !this.raw.isClosed();
  }

  /** Logs in on port with stream management and joins the room. */
  async connect(port: number): Promise<void> {
    // Positions counted on a stream that ended mean nothing on the next one.
    for (const p of this.posted) if (!p.acked) p.index = 0;
    const raw = await connectRaw(port);
    this.port = port;
    await openSecureStream(raw);
    const plain = Buffer.from(`\0${this.account.user}\0${this.account.password}`).toString('base64');
    raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain}</auth>`);
    const outcome = await raw.waitFor(/<success[^>]*(\/>|>[\s\S]*?<\/success>)|<failure[\s\S]*?<\/failure>/, 10_000);
    if (!outcome.startsWith('<success')) throw new Error(`${this.name}: authentication failed: ${outcome}`);
    await openStream(raw);
    if (this.smId) {
      raw.send(`<resume xmlns='${SM}' previd='${this.smId}' h='0'/>`);
      const r = await raw.waitFor(/<resumed[^>]*\/>|<failed[\s\S]*?<\/failed>|<failed[^>]*\/>/, 10_000);
      this.events.push({ kind: 'resume', detail: r.startsWith('<resumed') ? 'resumed' : (/<([a-z-]+) xmlns=['"]urn:ietf:params:xml:ns:xmpp-stanzas['"]/.exec(r)?.[1] ?? r), port, at: Date.now() });
    }
    this.generation++;
    raw.send(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${this.name}-${this.generation}</resource></bind></iq>`);
    await raw.waitFor(/<iq[^>]*id=['"]bind['"][\s\S]*?<\/iq>/, 10_000);
    raw.send(`<enable xmlns='${SM}' resume='true'/>`);
    const enabled = await raw.waitFor(/<enabled[^>]*\/>/, 10_000);
    this.smId = /id=['"]([^'"]+)['"]/.exec(enabled)?.[1] ?? null;
    this.out = 0;
    this.raw = raw;
    this.scanned = raw.text.length;
    this.lost = new Promise((resolve) => { this.onLost = resolve; });
    raw.socket.on('data', () => this.scan());
    void raw.closed.then(() => { this.scan(); this.onLost(); });
    this.sendStanza(`<presence to='${this.room}/${this.nick}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>`);
    await raw.waitFor((unread) => /<presence[^>]*from=['"][^'"]*['"][^>]*>[\s\S]*?code=['"]110['"]/.test(unread) || /<presence[^>]*type=['"]error['"]/.test(unread), 15_000);
    if (/<presence[^>]*type=['"]error['"]/.test(raw.text.slice(this.scanned))) throw new Error(`${this.name}: join refused: ${raw.text.slice(this.scanned)}`);
    // What the last stream did not get acknowledged goes again, in order, with the same origin-id.
    for (const p of this.posted) if (!p.acked) this.sendMessage(p);
  }

  private sendStanza(xml: string): number {
    this.raw!.send(xml);
    return ++this.out;
  }

  private sendMessage(p: Posted): void {
    p.index = this.sendStanza(`<message to='${this.room}' type='groupchat' id='${p.body.replace(' ', '-')}'><body>${p.body}</body><origin-id xmlns='urn:xmpp:sid:0' id='${p.body.replace(' ', '-')}'/></message>`);
    p.sends++;
  }

  /** Reads acks, stream errors and error stanzas out of what arrived since the last look. */
  private scan(): void {
    const raw = this.raw;
    if (!raw) return;
    const text = raw.text;
    const re = /<a xmlns=['"]urn:xmpp:sm:3['"] h=['"](\d+)['"]\/>|<stream:error>([\s\S]*?)<\/stream:error>|<message[^>]*type=['"]error['"][\s\S]*?<\/message>/g;
    re.lastIndex = this.scanned;
    let m: RegExpExecArray | null;
    while ((m = re.exec(text))) {
      this.scanned = re.lastIndex;
      if (m[1] !== undefined) {
        const h = Number(m[1]);
        for (const p of this.posted) if (!p.acked && p.index <= h && p.index > 0) p.acked = true;
      } else if (m[2] !== undefined) {
        const cond = /<([a-z-]+) xmlns=['"]urn:ietf:params:xml:ns:xmpp-streams['"]\s*\/?>([^<]*)/.exec(m[2]);
        const condition = cond?.[1] ?? m[2];
        this.sentTo = condition === 'see-other-host' ? (cond?.[2] ?? null) : null;
        this.events.push({ kind: 'stream-error', detail: condition + (this.sentTo ? ` ${this.sentTo}` : ''), port: this.port, at: Date.now() });
      } else this.errors.push(m[0]);
    }
  }

  /** Posts one message (sent now when connected, else after the next connection). */
  post(n: number): void {
    const p: Posted = { n, body: `${this.name} ${n}`, index: 0, acked: false, sends: 0 };
    this.posted.push(p);
    if (this.connected) this.sendMessage(p);
  }

  /** Connects again after the stream ended: where the server said, else the first of ports() that answers. */
  private async reconnect(deadline: number): Promise<void> {
    while (Date.now() < deadline) {
      const told = this.sentTo ? Number(this.sentTo.split(':').pop()) : null;
      this.sentTo = null;
      const candidates = told ? [told, ...this.ports()] : this.ports().filter((p) => p !== this.port).concat(this.ports());
      for (const port of candidates) {
        try {
          await this.connect(port);
          return;
        } catch {
          // that node is going or gone: the next one
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${this.name}: could not connect again`);
  }

  /** Posts count messages, one every intervalMs, following the server wherever it sends the client. */
  async run(count: number, intervalMs: number, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let k = 0; k < count; k++) {
      if (!this.connected) await this.reconnect(deadline);
      this.post(this.posted.length + 1);
      await Promise.race([new Promise((r) => setTimeout(r, intervalMs)), this.lost]);
    }
    await this.settle(deadline);
  }

  /** Waits until every message is acknowledged (asking with <r/>), connecting again when needed. */
  async settle(deadline = Date.now() + 60_000): Promise<void> {
    while (this.posted.some((p) => !p.acked)) {
      if (Date.now() > deadline) throw new Error(`${this.name}: ${this.posted.filter((p) => !p.acked).length} message(s) never acknowledged`);
      if (!this.connected) await this.reconnect(deadline);
      this.raw!.send(`<r xmlns='${SM}'/>`);
      await Promise.race([new Promise((r) => setTimeout(r, 200)), this.lost]);
    }
  }

  close(): void {
    this.raw?.send('</stream:stream>');
    this.raw?.close();
  }
}
