// The compliance exporter on one node (PGlite): a run writes its files and only then deletes its rows,
// a run with nothing to do still counts, files never appear half-written, a failing run leaves the
// rows for the next one, and a run a dead node left is finished with the same file names and bytes.
import { expect } from 'chai';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ComplianceEvent } from '../storage/types.js';
import { changeComplianceConfig, complianceState } from '../src/compliance/state.js';
import { ComplianceExporter, LeaseHeld, complianceExporter } from '../src/compliance/exporter.js';
import { formatInterval, parseInterval } from '../src/admin/compliance.js';
import type { ServerCore } from '../src/server.js';
import { startUnitServer } from './unit-server.js';

function events(prefix: string, n: number): ComplianceEvent[] {
  return Array.from({ length: n }, (_, i) => ({
    kind: i % 3 === 0 ? 'join' : 'chat', stamp: new Date(Date.UTC(2026, 0, 1, 0, 0, i)), room: 'lobby@conference.localhost',
    actor: `u${i % 4}@localhost`, nick: `u${i % 4}`, content: `${prefix}${i}`, messageId: null, detail: null,
  }) as ComplianceEvent);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('compliance exporter (one node, PGlite)', function () {
  this.timeout(60000);
  let unit: { server: ServerCore; stop(): Promise<void> };
  let out: string;

  beforeEach(async () => {
    unit = await startUnitServer('perch-compliance-exp-');
    out = await mkdtemp(path.join(tmpdir(), 'perch-compliance-out-'));
    const server = unit.server;
    await changeComplianceConfig(server, { ...complianceState(server).config, format: 'jsonl', outputDirectory: out });
  });
  afterEach(async () => {
    delete process.env.PERCH_TEST_COMPLIANCE_PAUSE;
    await unit.stop();
    await rm(out, { recursive: true, force: true });
  });

  async function contents(): Promise<Map<string, string>> {
    const m = new Map<string, string>();
    for (const name of (await readdir(out)).sort()) m.set(name, await readFile(path.join(out, name), 'utf8'));
    return m;
  }

  it('exports the waiting events into files, deletes the rows, and the next run has nothing', async () => {
    const { server } = unit;
    await server.stores.compliance.append(events('first-', 25));
    const reports = await complianceExporter(server).runNow();
    expect(reports).to.have.length(1);
    expect(reports[0]!.events).to.equal(25);
    expect(reports[0]!.recovered).to.equal(false);
    const files = await contents();
    expect([...files.keys()]).to.deep.equal(reports[0]!.files.slice().sort());
    const all = [...files.values()].join('\n');
    for (let i = 0; i < 25; i++) expect(all).to.match(new RegExp(`first-${i}\\b`));
    expect(await server.stores.compliance.count()).to.equal(0);
    const runs = await server.stores.compliance.runs(5);
    expect(runs[0]!.finishedAt).to.not.equal(null);
    expect(runs[0]!.events).to.equal(25);

    const before = await server.stores.compliance.lastRunAt();
    await sleep(20);
    expect(await complianceExporter(server).runNow()).to.deep.equal([]);
    expect((await server.stores.compliance.lastRunAt())!.getTime()).to.be.greaterThan(before!.getTime());
    expect(await server.stores.compliance.runs(5)).to.have.length(1);

    // The next run covers only what came after, from the previous run's opening.
    await server.stores.compliance.append(events('second-', 3));
    const next = await complianceExporter(server).runNow();
    expect(next.map((r) => r.events)).to.deep.equal([3]);
    expect(next[0]!.runId).to.be.greaterThan(reports[0]!.runId);
    const text = [...(await contents()).entries()].filter(([n]) => next[0]!.files.includes(n)).map(([, c]) => c).join('');
    expect(text).to.include('second-2').and.not.include('first-');
  });

  it('writes to hidden temporary names and renames them; a dead node\'s temporary files are removed', async () => {
    const { server } = unit;
    await writeFile(path.join(out, '.perch-compliance-000001.jsonl.partial-deadbeef.tmp'), 'half a file');
    await server.stores.compliance.append(events('t-', 5));
    process.env.PERCH_TEST_COMPLIANCE_PAUSE = 'after-temp';
    const exporter = new ComplianceExporter(server, null, { node: 'paused', leaseMs: 1000 });
    const running = exporter.runNow().catch((e: Error) => e);
    let names: string[] = [];
    for (let i = 0; i < 100; i++) {
      names = await readdir(out);
      if (names.some((n) => n.endsWith('.tmp')) && !names.includes('.perch-compliance-000001.jsonl.partial-deadbeef.tmp')) break;
      await sleep(50);
    }
    // Paused after the temporary write: the files exist only under hidden temporary names.
    expect(names.length).to.be.greaterThan(0);
    expect(names.every((n) => n.startsWith('.') && n.endsWith('.tmp')), names.join(' ')).to.equal(true);
    await exporter.stop();
    expect(await running).to.be.instanceOf(Error);
    // The failed run removed its temporary files and kept its rows.
    expect(await readdir(out)).to.deep.equal([]);
    expect(await server.stores.compliance.count()).to.equal(5);

    delete process.env.PERCH_TEST_COMPLIANCE_PAUSE;
    const reports = await complianceExporter(server).runNow();
    expect(reports.map((r) => [r.events, r.recovered])).to.deep.equal([[5, true]]);
    const left = await readdir(out);
    expect(left.filter((n) => n.endsWith('.tmp'))).to.deep.equal([]);
    expect(left.sort()).to.deep.equal(reports[0]!.files.slice().sort());
  });

  it('finishes a run a dead node left with the same run id, file names and bytes', async () => {
    const { server } = unit;
    await server.stores.compliance.append(events('r-', 12));
    process.env.PERCH_TEST_COMPLIANCE_PAUSE = 'after-rename';
    const dead = new ComplianceExporter(server, null, { node: 'dead', leaseMs: 400 });
    const running = dead.runNow().catch((e: Error) => e);
    let first = new Map<string, string>();
    for (let i = 0; i < 100 && first.size === 0; i++) {
      first = new Map([...(await contents())].filter(([n]) => !n.endsWith('.tmp')));
      if (first.size === 0) await sleep(50);
    }
    expect(first.size).to.be.greaterThan(0);
    const opened = await server.stores.compliance.unfinishedRun();
    expect(opened!.node).to.equal('dead');

    // While the paused node holds (and renews) the lease, another one cannot run and says who has it.
    delete process.env.PERCH_TEST_COMPLIANCE_PAUSE;
    const other = new ComplianceExporter(server, null, { node: 'other', leaseMs: 400 });
    const refused = await other.runNow(300).catch((e: Error) => e);
    expect(refused).to.be.instanceOf(LeaseHeld);
    expect((refused as LeaseHeld).holder).to.equal('dead');

    await dead.stop();
    await running;
    // The rows are still there: nothing was finished.
    expect(await server.stores.compliance.count()).to.equal(12);
    const reports = await other.runNow(5000);
    expect(reports.map((r) => [r.runId, r.events, r.recovered])).to.deep.equal([[opened!.id, 12, true]]);
    const second = new Map([...(await contents())].filter(([n]) => !n.endsWith('.tmp')));
    expect([...second.keys()]).to.deep.equal([...first.keys()]);
    for (const [name, bytes] of first) expect(second.get(name), name).to.equal(bytes);
    expect(await server.stores.compliance.count()).to.equal(0);
    await other.stop();
  });

  it('finishing a dead node\'s run under another output directory removes the files that node wrote', async () => {
    const { server } = unit;
    await server.stores.compliance.append(events('d-', 6));
    process.env.PERCH_TEST_COMPLIANCE_PAUSE = 'after-rename';
    const dead = new ComplianceExporter(server, null, { node: 'dead', leaseMs: 400 });
    const running = dead.runNow().catch((e: Error) => e);
    let first: string[] = [];
    for (let i = 0; i < 100 && first.length === 0; i++) {
      first = (await readdir(out)).filter((n) => !n.endsWith('.tmp'));
      if (first.length === 0) await sleep(50);
    }
    expect(first.length).to.be.greaterThan(0);
    await dead.stop();
    await running;
    delete process.env.PERCH_TEST_COMPLIANCE_PAUSE;
    const moved = path.join(out, 'moved');
    await changeComplianceConfig(server, { ...complianceState(server).config, outputDirectory: moved });
    const reports = await complianceExporter(server).runNow();
    expect(reports.map((r) => [r.events, r.recovered])).to.deep.equal([[6, true]]);
    expect((await readdir(out)).filter((n) => n !== 'moved')).to.deep.equal([]);
    expect((await readdir(moved)).sort()).to.deep.equal(reports[0]!.files.slice().sort());
  });

  it('a run that cannot write keeps its rows and is finished by the next run once the directory works', async () => {
    const { server } = unit;
    const blocker = path.join(out, 'not-a-directory');
    await writeFile(blocker, '');
    await changeComplianceConfig(server, { ...complianceState(server).config, outputDirectory: path.join(blocker, 'sub') });
    await server.stores.compliance.append(events('f-', 4));
    const failed = await complianceExporter(server).runNow().catch((e: Error) => e);
    expect(failed).to.be.instanceOf(Error);
    expect(await server.stores.compliance.count()).to.equal(4);
    const unfinished = await server.stores.compliance.unfinishedRun();
    expect(unfinished).to.not.equal(null);
    // The lease was released: a run on any node may go on.
    expect(await server.stores.compliance.leaseHolder()).to.equal(null);

    await changeComplianceConfig(server, { ...complianceState(server).config, outputDirectory: path.join(out, 'later') });
    await server.stores.compliance.append(events('g-', 2));
    const reports = await complianceExporter(server).runNow();
    expect(reports.map((r) => [r.runId, r.events, r.recovered])).to.deep.equal([[unfinished!.id, 4, true], [unfinished!.id + 1, 2, false]]);
    expect(await server.stores.compliance.count()).to.equal(0);
  });

  it('runs on its timer when capture is on and the interval has passed, and not before', async () => {
    const { server } = unit;
    await server.stores.compliance.append(events('s-', 3));
    const timer = new ComplianceExporter(server, null, { node: 'timer', tickMs: 50 });
    timer.start();
    try {
      await sleep(300);
      expect(await server.stores.compliance.count(), 'capture off: no scheduled run').to.equal(3);
      await changeComplianceConfig(server, { ...complianceState(server).config, enabled: true, runIntervalSeconds: 60 });
      for (let i = 0; i < 100 && (await server.stores.compliance.count()) > 0; i++) await sleep(50);
      expect(await server.stores.compliance.count(), 'never run before: due at once').to.equal(0);
      await server.stores.compliance.append(events('s2-', 2));
      await sleep(400);
      expect(await server.stores.compliance.count(), 'the interval has not passed').to.equal(2);
      // A run left unfinished is taken up at once, whatever the interval.
      await server.stores.compliance.openRun('gone');
      for (let i = 0; i < 100 && (await server.stores.compliance.count()) > 0; i++) await sleep(50);
      expect(await server.stores.compliance.count()).to.equal(0);
      expect((await server.stores.compliance.runs(1))[0]!.finishedAt).to.not.equal(null);
    } finally {
      await timer.stop();
    }
  });

  it('reads run intervals as the original\'s TimeSpan and as plain forms', () => {
    expect(parseInterval('00:15:00')).to.equal(900);
    expect(parseInterval('30.00:00:00')).to.equal(2_592_000);
    expect(parseInterval('1.02:03:04')).to.equal(93_784);
    expect(parseInterval('15m')).to.equal(900);
    expect(parseInterval('1h')).to.equal(3600);
    expect(parseInterval('30d')).to.equal(2_592_000);
    expect(parseInterval('90')).to.equal(90);
    expect(parseInterval('90s')).to.equal(90);
    expect(parseInterval('00:61:00')).to.equal(null);
    expect(parseInterval('soon')).to.equal(null);
    expect(formatInterval(900)).to.equal('00:15:00');
    expect(formatInterval(2_592_000)).to.equal('30.00:00:00');
  });
});
