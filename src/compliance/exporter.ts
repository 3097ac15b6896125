// The compliance exporter: every node runs a timer, and one node at a time (the holder of a lease in
// the database) turns the captured events into files. Exactly once comes from four things: a run's
// range of events is fixed when it is opened (under a table lock, so no lower id can commit later);
// the rendering is a pure function of the run, so a run repeated after a crash writes the same file
// names and bytes; files are written to a temporary name, fsynced and renamed (then the directory is
// fsynced); and the run's rows are deleted, in the transaction that marks it finished, only after that.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import client from 'prom-client';
import type { Module, Server } from '../context.js';
import type { CategoryRecord, ComplianceRecord, ComplianceRun } from '../../storage/types.js';
import { parseStoredXml } from '../modules/private.js';
import { complianceState } from './state.js';
import { renderExport, type ExportFile, type RoomDetails, type UserDetails } from './formats.js';

/** Events read per query while a run collects its range. */
const PAGE = 5000;
/** How long a node holds the lease without renewing it (a dead node's lapses after this). */
const DEFAULT_LEASE_MS = 60_000;
/** How often each node looks whether a run is due. */
const DEFAULT_TICK_MS = 5_000;

/** What one run exported. */
export interface RunReport {
  runId: number;
  events: number;
  files: string[];
  /** The run was a dead node's, finished here. */
  recovered: boolean;
  ms: number;
}

/** The lease is another node's; nothing was run. */
export class LeaseHeld extends Error {
  constructor(readonly holder: string, readonly expires: Date | null) {
    super(`the export is running on node ${holder}${expires ? ` (its lease runs until ${expires.toISOString()})` : ''}`);
  }
}

/** The directory export files go to: the configured one, or <dataDir>/compliance. */
export function outputDirectory(server: Server): string {
  const dir = complianceState(server).config.outputDirectory;
  return dir === '' ? path.join(server.config.dataDir, 'compliance') : dir;
}

/**
 * Creates a directory and its missing parents. Not mkdir's recursive option: on a path it can never
 * create (under /proc) that one never returns (Node 20).
 */
export async function makeDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw e;
    await makeDirectory(parent);
    try {
      await mkdir(dir);
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST') throw again;
    }
  }
}

/** The temporary name of a file being written: hidden, so nothing that picks up finished files sees it. */
const TEMP = /^\..+\.partial-[0-9a-f]+\.tmp$/;
const tempName = (name: string): string => `.${name}.partial-${randomBytes(4).toString('hex')}.tmp`;


interface ExporterMetrics {
  runs: client.Counter;
  exported: client.Counter;
  failures: client.Counter;
  lastRun: client.Gauge;
  lastDuration: client.Gauge;
}

function createMetrics(server: Server): ExporterMetrics {
  const registers = [server.metrics.registry];
  new client.Gauge({
    name: 'perch_compliance_events_waiting', help: 'Captured compliance events not exported yet', registers,
    async collect() { this.set(await server.stores.compliance.count()); },
  });
  return {
    runs: new client.Counter({ name: 'perch_compliance_runs_total', help: 'Compliance export runs finished by this node', registers }),
    exported: new client.Counter({ name: 'perch_compliance_events_exported_total', help: 'Compliance events exported by this node', registers }),
    failures: new client.Counter({ name: 'perch_compliance_run_failures_total', help: 'Compliance export runs that failed on this node', registers }),
    lastRun: new client.Gauge({ name: 'perch_compliance_last_run_timestamp_seconds', help: 'When this node last finished a compliance export run (Unix time)', registers }),
    lastDuration: new client.Gauge({ name: 'perch_compliance_last_run_duration_seconds', help: 'Duration of the last compliance export run on this node', registers }),
  };
}

export class ComplianceExporter {
  private timer: NodeJS.Timeout | null = null;
  /** Runs on this node one after the other (the timer's and manual ones). */
  private chain: Promise<unknown> = Promise.resolve();
  private busy = false;
  /** No scheduled run on this node before this time (ms): set by a failed run. */
  private retryAt = 0;
  private stopped = false;
  /** Ends a test pause (the node stops). */
  private unpause: (() => void) | null = null;
  readonly leaseMs: number;
  readonly tickMs: number;
  /** The lease holder's name: the node id. */
  readonly node: string;

  constructor(private readonly server: Server, private readonly metrics: ExporterMetrics | null, opts: { leaseMs?: number; tickMs?: number; node?: string } = {}) {
    this.leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
    this.tickMs = opts.tickMs ?? DEFAULT_TICK_MS;
    this.node = opts.node ?? server.config.nodeId;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.tickMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unpause?.();
    await this.chain.catch(() => {});
  }

  /** The timer: a run when the interval has passed since the last one, or a dead node left one unfinished. */
  async tick(): Promise<void> {
    if (this.busy || this.stopped || !complianceState(this.server).enabled) return;
    // After a failure (disk full, directory gone) this node tries again an interval later, not every tick.
    if (Date.now() < this.retryAt) return;
    try {
      const store = this.server.stores.compliance;
      const last = await store.lastRunAt();
      const due = last === null || Date.now() - last.getTime() >= complianceState(this.server).config.runIntervalSeconds * 1000;
      if (!due && (await store.unfinishedRun()) === null) return;
      await this.exclusive(() => this.runHoldingLease());
      this.retryAt = 0;
    } catch {
      // Logged and counted where it failed.
      this.retryAt = Date.now() + complianceState(this.server).config.runIntervalSeconds * 1000;
    }
  }

  /**
   * A run now, whatever the interval (an administrator's). Waits up to waitMs for the lease when
   * another node holds it, then throws LeaseHeld naming that node.
   */
  async runNow(waitMs = 30_000): Promise<RunReport[]> {
    return this.exclusive(async () => {
      const until = Date.now() + waitMs;
      for (;;) {
        const reports = await this.runHoldingLease();
        if (reports !== null) return reports;
        if (Date.now() >= until) {
          const held = await this.server.stores.compliance.leaseHolder();
          throw new LeaseHeld(held?.holder ?? 'another node', held?.expires ?? null);
        }
        await new Promise((r) => setTimeout(r, Math.min(500, Math.max(50, until - Date.now()))));
      }
    });
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(async () => {
      this.busy = true;
      try {
        return await fn();
      } finally {
        this.busy = false;
      }
    });
    this.chain = next.catch(() => {});
    return next;
  }

  /** Takes the lease and runs; null when another node holds it. The lease is renewed while working. */
  private async runHoldingLease(): Promise<RunReport[] | null> {
    const store = this.server.stores.compliance;
    if (!(await store.claimLease(this.node, this.leaseMs))) return null;
    let lost = false;
    const renew = setInterval(() => {
      store.claimLease(this.node, this.leaseMs).then((held) => { if (!held) lost = true; }, () => { lost = true; });
    }, Math.max(100, Math.floor(this.leaseMs / 3)));
    const stillHeld = (): void => {
      if (lost) throw new Error('the exporter lease was lost (another node may have taken the run over)');
    };
    try {
      const reports: RunReport[] = [];
      const unfinished = await store.unfinishedRun();
      if (unfinished) reports.push(await this.exportRun(unfinished, true, stillHeld));
      const run = await store.openRun(this.node);
      if (run) reports.push(await this.exportRun(run, false, stillHeld));
      else if (!unfinished) await store.touchLastRun();
      return reports;
    } finally {
      clearInterval(renew);
      // Released only when still ours: a lease taken over by another node stays that node's.
      if (!lost) await store.releaseLease(this.node).catch(() => {});
    }
  }

  /** Renders the run, writes its files durably, and only then deletes its rows (finishRun). */
  private async exportRun(run: ComplianceRun, recovered: boolean, stillHeld: () => void): Promise<RunReport> {
    const started = Date.now();
    const store = this.server.stores.compliance;
    try {
      const events: ComplianceRecord[] = [];
      for (let after = run.fromId; ;) {
        const page = await store.read(after, run.toId, PAGE);
        events.push(...page);
        if (page.length < PAGE) break;
        after = page[page.length - 1]!.id;
      }
      const previous = await this.previousFinished(run);
      const config = complianceState(this.server).config;
      const out = renderExport({
        runId: run.id,
        periodStart: previous?.startedAt ?? events[0]?.stamp ?? run.startedAt,
        periodEnd: run.startedAt,
        events,
        presentAtStart: previous?.present ?? {},
        rooms: config.addRoomDetails ? await this.roomDetails(events) : new Map(),
        users: config.addUserDetails ? await this.userDetails(events) : new Map(),
        domain: this.server.domain,
        config,
      });
      stillHeld();
      const dir = outputDirectory(this.server);
      const files = out.files.map((f) => f.name);
      const paths = files.map((n) => path.join(dir, n));
      // Files a dead node wrote for this run under another configuration (format, directory, one file
      // per room) would hold the same events a second time.
      for (const p of run.files.filter((f) => path.isAbsolute(f) && !paths.includes(f))) await unlink(p).catch(() => {});
      await store.planRunFiles(run.id, paths);
      await this.writeFiles(dir, out.files, run.id);
      stillHeld();
      await store.finishRun(run.id, files, events.length, out.presentAtEnd);
      const ms = Date.now() - started;
      this.metrics?.runs.inc();
      this.metrics?.exported.inc(events.length);
      this.metrics?.lastRun.set(Date.now() / 1000);
      this.metrics?.lastDuration.set(ms / 1000);
      this.server.log.info('compliance export run finished', { run: run.id, events: events.length, files, ms, recovered });
      return { runId: run.id, events: events.length, files, recovered, ms };
    } catch (err) {
      this.metrics?.failures.inc();
      this.server.log.error('compliance export run failed; its events stay for the next run', { run: run.id, err, ms: Date.now() - started });
      throw err;
    }
  }

  /** The finished run before this one: its opening is this period's start, its present list the start's. */
  private async previousFinished(run: ComplianceRun): Promise<ComplianceRun | null> {
    const store = this.server.stores.compliance;
    const last = await store.lastFinishedRun();
    if (!last || last.id < run.id) return last;
    return (await store.runs(100)).find((r) => r.id < run.id && r.finishedAt !== null) ?? null;
  }

  /**
   * Each file to a temporary name (written and fsynced), then each renamed to its final name, then the
   * directory fsynced: a final name never holds a partial file, and once this returns the files are
   * on disk. A temporary file a dead node left is removed first.
   */
  private async writeFiles(dir: string, files: ExportFile[], runId: number): Promise<void> {
    await makeDirectory(dir);
    for (const name of await readdir(dir)) if (TEMP.test(name)) await unlink(path.join(dir, name)).catch(() => {});
    const written: { temp: string; final: string }[] = [];
    try {
      for (const f of files) {
        const temp = path.join(dir, tempName(f.name));
        written.push({ temp, final: path.join(dir, f.name) });
        const fh = await open(temp, 'w', 0o640);
        try {
          await fh.writeFile(f.content, 'utf8');
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
      await this.testPause('after-temp', runId);
      for (const w of written) await rename(w.temp, w.final);
    } catch (err) {
      await Promise.all(written.map((w) => unlink(w.temp).catch(() => {})));
      throw err;
    }
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
    await this.testPause('after-rename', runId);
  }

  /**
   * A test hook, and nothing else: PERCH_TEST_COMPLIANCE_PAUSE=after-temp or after-rename makes a run
   * stop at that point (logging it) until the node stops, so a test can kill the node there. The run
   * then fails: its rows stay, and the next run finishes it.
   */
  private async testPause(point: string, runId: number): Promise<void> {
    if (process.env.PERCH_TEST_COMPLIANCE_PAUSE !== point) return;
    this.server.log.warn('compliance export paused (test hook)', { point, run: runId, node: this.node });
    await new Promise<void>((resolve) => { this.unpause = resolve; });
    throw new Error('stopped while paused (test hook)');
  }

  /** Names, descriptions, categories and privacy of the rooms the events name, from the chat model or the room store. */
  private async roomDetails(events: ComplianceRecord[]): Promise<Map<string, RoomDetails>> {
    const out = new Map<string, RoomDetails>();
    const categories = new Map<string, CategoryRecord[]>();
    for (const jid of new Set(events.map((e) => e.room).filter((r): r is string => r !== null))) {
      const at = jid.indexOf('@');
      if (at <= 0) continue;
      const local = jid.slice(0, at);
      const service = jid.slice(at + 1);
      const chat = await this.server.stores.chat.room(service, local).catch(() => null);
      if (chat) {
        if (!categories.has(service)) categories.set(service, await this.server.stores.chat.categories(service).catch(() => []));
        const cat = categories.get(service)!.find((c) => c.name.toLowerCase() === chat.category.toLowerCase());
        out.set(jid, { jid, name: chat.name, description: chat.description, category: chat.category, privacy: chat.privacy, logged: cat?.chatHistory ?? true });
        continue;
      }
      const room = await this.server.stores.rooms.get(service, local).catch(() => null);
      const text = (v: unknown): string => (typeof v === 'string' ? v : '');
      out.set(jid, { jid, name: text(room?.config.name) || local, description: text(room?.config.description), category: null, privacy: null, logged: true });
    }
    return out;
  }

  /** Full name and e-mail address of this domain's users the events name, from their vCards. */
  private async userDetails(events: ComplianceRecord[]): Promise<Map<string, UserDetails>> {
    const out = new Map<string, UserDetails>();
    for (const jid of new Set(events.map((e) => e.actor).filter((a) => a !== ''))) {
      const at = jid.indexOf('@');
      let name: string | null = null;
      let email: string | null = null;
      if (at > 0 && jid.slice(at + 1) === this.server.domain) {
        const saved = await this.server.stores.userData.get(jid.slice(0, at), 'vcard', 'current').catch(() => null);
        const card = saved !== null ? parseStoredXml(saved) : null;
        name = card?.getChildText('FN')?.trim() || null;
        email = card?.getChild('EMAIL')?.getChildText('USERID')?.trim() || null;
      }
      out.set(jid, { jid, name, email });
    }
    return out;
  }
}

const exporters = new WeakMap<Server, ComplianceExporter>();

/** This node's exporter (the module starts it). */
export function complianceExporter(server: Server): ComplianceExporter {
  const e = exporters.get(server);
  if (!e) throw new Error('the compliance exporter is not started');
  return e;
}

/** Milliseconds from an environment variable (tests shorten the lease and the tick), else the default. */
function envMs(name: string): number | undefined {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

export const complianceExporterModule: Module = {
  name: 'compliance-exporter',
  init(server) {
    const exporter = new ComplianceExporter(server, createMetrics(server), {
      leaseMs: envMs('PERCH_COMPLIANCE_LEASE_MS'), tickMs: envMs('PERCH_COMPLIANCE_TICK_MS'),
    });
    exporters.set(server, exporter);
    exporter.start();
  },
  async stop(server) {
    await exporters.get(server)?.stop();
  },
};
