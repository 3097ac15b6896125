// Prometheus metrics, served on their own HTTP port.
import http from 'node:http';
import client from 'prom-client';

export class Metrics {
  readonly registry = new client.Registry();
  readonly connections = new client.Gauge({ name: 'perch_connections', help: 'Open client and component connections', labelNames: ['kind'], registers: [this.registry] });
  readonly sessions = new client.Gauge({ name: 'perch_sessions', help: 'Bound client sessions on this node', registers: [this.registry] });
  readonly authFailures = new client.Counter({ name: 'perch_auth_failures_total', help: 'Failed authentication attempts', labelNames: ['mechanism', 'condition'], registers: [this.registry] });
  readonly authSuccesses = new client.Counter({ name: 'perch_auth_successes_total', help: 'Successful authentications', labelNames: ['mechanism'], registers: [this.registry] });
  /**
   * Stanzas by kind, counted in plain numbers and handed to the registry when it is scraped: a
   * labelled counter's inc() hashes its labels on every call, a few per cent of a room join's CPU.
   */
  private readonly stanzas = { in: { message: 0, presence: 0, iq: 0 }, out: { message: 0, presence: 0, iq: 0 } };
  readonly stanzasIn = stanzaCounter('perch_stanzas_in_total', 'Stanzas received from connections', this.registry, this.stanzas.in);
  readonly stanzasOut = stanzaCounter('perch_stanzas_out_total', 'Stanzas written to connections', this.registry, this.stanzas.out);
  readonly streamErrors = new client.Counter({ name: 'perch_stream_errors_total', help: 'Streams closed with an error', labelNames: ['condition'], registers: [this.registry] });
  /** A handler threw or rejected: the stanza got an error answer, everything else went on (where: client, route, iq, room, process). */
  readonly handlerErrors = new client.Counter({ name: 'perch_handler_errors_total', help: 'Handlers that threw or rejected; the stanza was refused, the node went on', labelNames: ['where'], registers: [this.registry] });
  readonly routingSeconds = new StanzaHistogram('perch_routing_seconds', 'Time from a stanza arriving to it being handed to its destination',
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25], this.registry);
  /** The archive writer's batches (src/archive-writer.ts): entries per INSERT, and the statement's time to commit. */
  readonly archiveBatchEntries = new client.Histogram({
    name: 'perch_archive_batch_entries', help: 'Archive entries per batch statement (all lanes)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], registers: [this.registry],
  });
  readonly archiveCommitSeconds = new client.Histogram({
    name: 'perch_archive_commit_seconds', help: 'Time from sending an archive batch statement to PostgreSQL to its commit (all lanes)',
    buckets: [0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [this.registry],
  });
  /** The last self-test this node ran (the selftest admin command): 1 passed, 0 failed; its duration and when. */
  readonly selftestOk = new client.Gauge({ name: 'perch_selftest_ok', help: 'Last self-test run on this node passed (1) or failed (0)', registers: [this.registry] });
  readonly selftestSeconds = new client.Gauge({ name: 'perch_selftest_duration_seconds', help: 'Duration of the last self-test run on this node', registers: [this.registry] });
  readonly selftestTimestamp = new client.Gauge({ name: 'perch_selftest_timestamp_seconds', help: 'When the last self-test run on this node ended (Unix time)', registers: [this.registry] });
  private server: http.Server | null = null;

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'perch_' });
  }

  countIn(name: string): void {
    if (name === 'message' || name === 'presence' || name === 'iq') this.stanzas.in[name]++;
  }
  countOut(name: string): void {
    if (name === 'message' || name === 'presence' || name === 'iq') this.stanzas.out[name]++;
  }

  async listen(host: string, port: number): Promise<number> {
    const { server, port: bound } = await serveMetrics(host, port, async () => ({ type: this.registry.contentType, text: await this.registry.metrics() }));
    this.server = server;
    return bound;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/**
 * A histogram observed once per stanza: bucket counts in a typed array, put in the registry's form when it
 * is scraped (prom-client's observe() makes and hashes a label object on every call).
 */
class StanzaHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly counts: Float64Array;
  private sum = 0;

  constructor(readonly name: string, readonly help: string, private readonly buckets: readonly number[], registry: client.Registry) {
    this.counts = new Float64Array(buckets.length + 1);
    // The registry reads a metric through its name, get() and reset() only.
    registry.registerMetric(this as unknown as client.Metric);
  }

  observe(seconds: number): void {
    let i = 0;
    while (i < this.buckets.length && seconds > this.buckets[i]!) i++;
    this.counts[i] = this.counts[i]! + 1;
    this.sum += seconds;
  }

  get(): { name: string; help: string; type: 'histogram'; values: client.MetricValueWithName<string>[]; aggregator: 'sum' } {
    const bucket = `${this.name}_bucket`;
    const values: client.MetricValueWithName<string>[] = [];
    let count = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      count += this.counts[i]!;
      values.push({ labels: { le: this.buckets[i]! }, value: count, metricName: bucket });
    }
    count += this.counts[this.buckets.length]!;
    values.push({ labels: { le: '+Inf' }, value: count, metricName: bucket },
      { labels: {}, value: this.sum, metricName: `${this.name}_sum` }, { labels: {}, value: count, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
  }
}

/** A counter of stanzas by kind whose values are the given numbers, read when the registry is scraped. */
function stanzaCounter(name: string, help: string, registry: client.Registry, counts: Record<'message' | 'presence' | 'iq', number>): client.Counter<'kind'> {
  return new client.Counter({
    name, help, labelNames: ['kind'], registers: [registry],
    collect() {
      this.reset();
      for (const [kind, n] of Object.entries(counts)) this.inc({ kind }, n);
    },
  });
}

/** The /metrics endpoint over HTTP; render gives the exposition and its content type. */
async function serveMetrics(host: string, port: number, render: () => Promise<{ type: string; text: string }>): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(async (req, res) => {
    if (req.url !== '/metrics') { res.writeHead(404).end(); return; }
    try {
      const { type, text } = await render();
      res.writeHead(200, { 'content-type': type });
      res.end(text);
    } catch (e) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end(`metrics unavailable: ${(e as Error).message}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : port };
}

/**
 * The metrics port of `perch start --workers N`, in the primary: each scrape asks every worker for
 * its registry and sums them (prom-client's cluster aggregation: counters and session gauges add up).
 */
export class ClusterMetrics {
  private readonly aggregator = new client.AggregatorRegistry();
  private server: http.Server | null = null;

  async listen(host: string, port: number): Promise<number> {
    const served = await serveMetrics(host, port, async () => ({ type: this.aggregator.contentType, text: await this.aggregator.clusterMetrics() }));
    this.server = served.server;
    return served.port;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** A worker's side of ClusterMetrics: the primary's requests are answered with this node's registry. */
export function shareWithPrimary(metrics: Metrics): void {
  // Constructing one is what makes prom-client answer the primary's requests in a worker.
  new client.AggregatorRegistry();
  client.AggregatorRegistry.setRegistries([metrics.registry]);
}
