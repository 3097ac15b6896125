// A fault-injection run: the private cluster once, then rounds of each fault in turn, then the table.
// Used by conformance/faults.test.ts (one short round of each fault) and bench/faults.mjs (the soak).
import { FaultCluster, NODES } from './cluster.js';
import { DEFAULT_FAULTS, FAULTS } from './faults.js';
import { formatTable, runRound, type RoundOptions, type RoundResult } from './round.js';

export interface RunOptions extends Omit<RoundOptions, 'users' | 'password' | 'log'> {
  faults: string[];
  rounds: number;
  portBase: number;
  log?: (line: string) => void;
}

/** The CI short form: about 20 s a round. */
export const SHORT: Omit<RunOptions, 'portBase'> = {
  faults: DEFAULT_FAULTS, rounds: 1, rate: 4, clientsPerNode: 2,
  warmupMs: 2000, afterFaultMs: 3000, recoverTimeoutMs: 25_000, settleMs: 6000,
  durationMs: 8000, restartAfterMs: 3000,
};

/** The soak by hand: longer faults, the 30 s Redis cut of the guarantee. */
export const SOAK: Omit<RunOptions, 'portBase'> = {
  ...SHORT, rounds: 3, rate: 10, warmupMs: 10_000, afterFaultMs: 10_000, recoverTimeoutMs: 60_000,
  settleMs: 15_000, durationMs: 30_000, restartAfterMs: 10_000,
};

export function faultUsers(clientsPerNode: number): string[] {
  return Array.from({ length: NODES * clientsPerNode }, (_, i) => `faultuser${i}`);
}

export class FaultRun {
  private constructor(readonly cluster: FaultCluster, readonly opts: RunOptions) {}

  static async start(opts: RunOptions): Promise<FaultRun> {
    for (const f of opts.faults) if (!FAULTS.has(f)) throw new Error(`unknown fault ${f} (known: ${[...FAULTS.keys()].join(', ')})`);
    const cluster = await FaultCluster.start({ portBase: opts.portBase, users: faultUsers(opts.clientsPerNode), password: 'pw' });
    return new FaultRun(cluster, opts);
  }

  /** The previous round failed or never recovered: the next starts on a reset cluster. */
  private needsReset = false;

  async round(faultName: string, round: number): Promise<RoundResult> {
    const fault = FAULTS.get(faultName);
    if (!fault) throw new Error(`unknown fault ${faultName}`);
    const reset = this.needsReset;
    if (reset) {
      this.opts.log?.('  cluster reset (the previous round did not recover)');
      await this.cluster.reset();
    }
    this.needsReset = true;
    const r = await runRound(this.cluster, fault, round, {
      ...this.opts, users: faultUsers(this.opts.clientsPerNode), password: 'pw', ...(this.opts.log ? { log: this.opts.log } : {}),
    });
    this.needsReset = r.recoverSeconds === null;
    if (reset) r.detail.notes.unshift('cluster reset before this round (the previous one did not recover)');
    return r;
  }

  close(): Promise<void> {
    return this.cluster.close();
  }
}

/** Every round of every fault; the cluster is closed whatever happens. */
export async function runFaults(opts: RunOptions): Promise<RoundResult[]> {
  const run = await FaultRun.start(opts);
  const results: RoundResult[] = [];
  try {
    for (let round = 1; round <= opts.rounds; round++) {
      for (const f of opts.faults) {
        opts.log?.(`round ${round}: ${f}`);
        const r = await run.round(f, round);
        results.push(r);
        opts.log?.(formatTable([r]).split('\n')[2]!);
      }
    }
  } finally {
    await run.close();
  }
  return results;
}
