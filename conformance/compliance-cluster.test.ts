// The compliance exporter across two server processes sharing real PostgreSQL and Redis, with the
// exporting node killed (SIGKILL) in the middle of a run while events keep arriving: the other node
// takes the run over once the lease lapses, and every captured event is in the output files exactly
// once. The kill point is held by the test hook PERCH_TEST_COMPLIANCE_PAUSE (after the temporary
// files are written, or after they are renamed, before the rows are deleted).
// Needs the services; under CI their absence fails the suite, locally it skips.
import { expect } from 'chai';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openDataStores } from '../storage/open.js';
import type { ComplianceEvent, DataStores } from '../storage/types.js';
import { DEFAULT_COMPLIANCE_CONFIG } from '../storage/types.js';
import {
  startServer, randomName, sleep, perch, IN_CI, PG_ADMIN_URL, CLUSTER_REDIS_URL, servicesAvailable, type RunningServer, type CliResult,
} from './harness.js';

const REDIS_URL = CLUSTER_REDIS_URL;
const LEASE_MS = 2000;


/** Starts a node with extra environment (the test hook, a short lease and tick). */
async function startNode(url: string, env: Record<string, string>): Promise<RunningServer> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await startServer({ databaseUrl: url, redisUrl: REDIS_URL, nodeId: randomName('exp-') });
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function waitForLog(node: RunningServer, text: string, timeoutMs: number): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const line = node.logs.find((l) => l.includes(text));
    if (line) return line;
    if (Date.now() > until) throw new Error(`no log line with ${text} in ${timeoutMs} ms; logs:\n${node.logs.slice(-40).join('\n')}`);
    await sleep(50);
  }
}

/**
 * Appends events in small batches until stopped; each content is a token found nowhere else. The
 * original's XML leaves JOIN and PART content empty, so an XML round sends posts only.
 */
function eventStream(stores: DataStores, round: string, postsOnly: boolean): { tokens: string[]; stop(): Promise<void> } {
  const tokens: string[] = [];
  let running = true;
  const rooms = ['desk', 'floor', 'lobby'];
  const loop = (async () => {
    let n = 0;
    while (running) {
      const batch: ComplianceEvent[] = [];
      const size = 1 + (n % 4);
      for (let i = 0; i < size; i++, n++) {
        const token = `evt:${round}:${String(n).padStart(6, '0')}:end`;
        tokens.push(token);
        batch.push({
          kind: postsOnly ? 'chat' : n % 5 === 0 ? 'join' : n % 5 === 4 ? 'part' : 'chat', stamp: new Date(), room: `${rooms[n % 3]}@conference.localhost`,
          actor: `user${n % 7}@localhost`, nick: `user${n % 7}`, content: token, messageId: `id-${n}`, detail: null,
        });
      }
      await stores.compliance.append(batch);
      await sleep(15);
    }
  })();
  return { tokens, async stop() { running = false; await loop; } };
}

async function outputText(dir: string): Promise<{ names: string[]; text: string; temps: string[] }> {
  const all = await readdir(dir);
  const names = all.filter((n) => !n.startsWith('.')).sort();
  // The original's XML repeats each conversation's first message as <FirstMessage>: not a second export.
  const text = (await Promise.all(names.map((n) => readFile(path.join(dir, n), 'utf8')))).join('\n')
    .replace(/<FirstMessage[\s\S]*?<\/FirstMessage>/g, '');
  return { names, text, temps: all.filter((n) => n.endsWith('.tmp')) };
}

function occurrences(text: string, token: string): number {
  let count = 0;
  for (let at = text.indexOf(token); at !== -1; at = text.indexOf(token, at + token.length)) count++;
  return count;
}

describe('conformance: compliance export across two nodes, one killed mid-run (PostgreSQL + Redis)', function () {
  this.timeout(180000);

  before(async function () {
    const missing = await servicesAvailable();
    if (missing) {
      if (IN_CI) throw new Error(`the compliance cluster test needs PostgreSQL and Redis (CI=true): ${missing}`);
      console.warn(`    skipping the compliance cluster test: ${missing}`);
      this.skip();
    }
  });

  for (const [point, format] of [['after-temp', 'jsonl'], ['after-rename', 'jsonl'], ['after-rename', 'xml']] as const) {
    it(`exports every event exactly once when the exporting node is killed ${point.replace('-', ' ')} (${format})`, async () => {
      const dbName = randomName('perch_cexp_');
      const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${dbName}`);
      await admin.end();
      const u = new URL(PG_ADMIN_URL);
      u.pathname = `/${dbName}`;
      const url = u.toString();
      const out = await mkdtemp(path.join(tmpdir(), 'perch-cexp-out-'));
      const nodes: RunningServer[] = [];
      let stores: DataStores | null = null;
      let stream: { tokens: string[]; stop(): Promise<void> } | null = null;
      let pending: Promise<CliResult> | null = null;
      try {
        stores = await openDataStores({ databaseUrl: url, dataDir: null });
        // Capture on, the interval long (runs here are the manual ones and the take-over), the last run now.
        await stores.compliance.setConfig({
          ...DEFAULT_COMPLIANCE_CONFIG, enabled: true, format, outputDirectory: out, runIntervalSeconds: 3600, oneRoomPerFile: format === 'xml',
        });
        await stores.compliance.touchLastRun();
        const shortTimers = { PERCH_COMPLIANCE_LEASE_MS: String(LEASE_MS), PERCH_COMPLIANCE_TICK_MS: '250' };
        const nodeA = await startNode(url, { ...shortTimers, PERCH_TEST_COMPLIANCE_PAUSE: point });
        nodes.push(nodeA);
        const nodeB = await startNode(url, shortTimers);
        nodes.push(nodeB);

        stream = eventStream(stores, `${point}-${format}`, format === 'xml');
        await sleep(500);
        // A manual run on node A: it opens a run and stops at the kill point.
        pending = perch(['compliance', 'run'], { dataDir: nodeA.dataDir, databaseUrl: url });
        const paused = JSON.parse(await waitForLog(nodeA, 'compliance export paused (test hook)', 30000)) as { run: number };
        const atPause = await outputText(out);
        if (point === 'after-temp') {
          expect(atPause.names, 'no final file before the rename').to.deep.equal([]);
          expect(atPause.temps.length).to.be.greaterThan(0);
        } else {
          expect(atPause.names.length).to.be.greaterThan(0);
        }
        const renamed = new Map(await Promise.all(atPause.names.map(async (n) => [n, await readFile(path.join(out, n), 'utf8')] as const)));
        await sleep(300); // events keep arriving while the run is held
        await nodeA.kill();
        const cli = await pending;
        pending = null;
        expect(cli.code, 'the manual run on the killed node did not report success').to.not.equal(0);

        // Node B finishes the same run (same id) once A's lease lapses, then opens the next.
        const took = JSON.parse(await waitForLog(nodeB, '"recovered":true', LEASE_MS * 10)) as { run: number; events: number };
        expect(took.run).to.equal(paused.run);
        await sleep(300);
        await stream.stop();
        const last = await perch(['compliance', 'run', '--json'], { dataDir: nodeB.dataDir, databaseUrl: url });
        expect(last.code, last.stderr).to.equal(0);

        expect(await stores.compliance.count(), 'rows left after the last run').to.equal(0);
        expect(await stores.compliance.unfinishedRun()).to.equal(null);
        const runs = await stores.compliance.runs(100);
        expect(runs.find((r) => r.id === paused.run)!.finishedAt).to.not.equal(null);

        const { names, text, temps } = await outputText(out);
        expect(temps, 'temporary files left').to.deep.equal([]);
        expect(names.length).to.be.greaterThan(0);
        if (point === 'after-rename') {
          // The files the killed node had renamed are rewritten with the same names and bytes.
          for (const [name, bytes] of renamed) expect(await readFile(path.join(out, name), 'utf8'), name).to.equal(bytes);
        }
        const tokens = stream.tokens;
        expect(tokens.length).to.be.greaterThan(50);
        const missing = tokens.filter((t) => occurrences(text, t) === 0);
        const duplicated = tokens.filter((t) => occurrences(text, t) > 1);
        expect(missing, `${missing.length} of ${tokens.length} events missing`).to.deep.equal([]);
        expect(duplicated, `${duplicated.length} of ${tokens.length} events duplicated`).to.deep.equal([]);
        const exported = runs.reduce((n, r) => n + r.events, 0);
        expect(exported, 'events counted by the runs').to.equal(tokens.length);
      } finally {
        await stream?.stop().catch(() => {});
        await pending?.catch(() => {});
        await Promise.all(nodes.map((n) => n.kill()));
        await stores?.db.close().catch(() => {});
        const drop = new pg.Client({ connectionString: PG_ADMIN_URL });
        await drop.connect();
        await drop.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => {});
        await drop.end();
        await rm(out, { recursive: true, force: true });
      }
    });
  }
});
