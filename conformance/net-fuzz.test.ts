// Network-level fuzz, short form: random and mutated stanzas from raw sockets against a running
// server (conformance/net-fuzz-kit.ts); the long run is bench/net-fuzz.mjs.
import { expect } from 'chai';
import { startServer, randomName, type RunningServer } from './harness.js';
import { runNetFuzz, NET_FUZZ_CONFIG } from './net-fuzz-kit.js';

describe('conformance: network fuzz (short)', function () {
  this.timeout(120000);
  let server: RunningServer;
  const users = Array.from({ length: 4 }, (_, i) => randomName(`nf${i}`));
  const watcher = randomName('nfw');

  before(async function () {
    this.timeout(60000);
    server = await startServer({ users: Object.fromEntries([...users, watcher].map((u) => [u, 'pw'])), configYaml: NET_FUZZ_CONFIG, registration: true });
  });
  after(async () => {
    await server?.stop();
  });

  it('answers every mutated input with a reply, a stanza error or a stream error and a close, and serves a well-behaved client throughout', async () => {
    const seed = Number(process.env.NET_FUZZ_SEED ?? Date.now() % 1_000_000);
    const report = await runNetFuzz({
      port: server.ports.c2s, metricsPort: server.ports.metrics, users, watcher, room: `${randomName('fuzz')}@conference.localhost`,
      durationMs: Number(process.env.NET_FUZZ_MS ?? 40_000), seed, workers: 4,
      alive: () => server.process.exitCode === null && server.process.signalCode === null,
    });
    const summary = JSON.stringify({ ...report, findings: report.findings.slice(0, 10) }, null, 1);
    expect(report.serverAlive, summary).to.equal(true);
    expect(report.findings, `seed ${seed}: ${summary}`).to.deep.equal([]);
    expect(report.inputs, summary).to.be.above(200);
    expect(report.watcher.failures, summary).to.equal(0);
    expect(report.watcher.rounds, summary).to.be.above(20);
    expect(report.rssEndMb - report.rssStartMb, summary).to.be.below(200);
    const bad = server.logs.filter((l) => /unhandled promise rejection|uncaught exception|"level":"error"/.test(l));
    expect(bad.slice(0, 5), 'errors logged by the server').to.deep.equal([]);
  });
});
