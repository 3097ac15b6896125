// The fuzzing engine. Each target runs in its own worker thread over the instrumented protocol/ modules:
// the worker picks an input from the corpus, mutates it, runs the target, and keeps the input when the
// branch and statement counters show a path (or a loop count bucket) not seen before. The parent thread
// watches the worker: an input that never returns (a hang) or a heap that outgrows its limit ends the
// worker, and the input being run is saved, as is any input that made the target throw.
import { Worker } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { coverageFiles, type FileCoverage } from './instrument.js';
import type { FuzzTarget, RunInput } from './target.js';

export interface FuzzOptions {
  target: string;
  /** Stop after this many inputs (seeds included); 0 for no limit. */
  runs: number;
  /** Stop after this many seconds; 0 for no limit. */
  seconds: number;
  corpusDir: string;
  crashDir: string;
  /** Write inputs that reach new statements or branches into corpusDir. */
  save: boolean;
  seed: number;
  /** One input taking longer than this (twice) is a defect: super-linear work on a bounded input. */
  slowMs: number;
  /** No progress for this long ends the worker and reports a hang. */
  hangMs: number;
  heapLimitMb: number;
  /** Directory of the instrumented protocol modules (instrumentProtocol). */
  instrumentedRoot: string;
  /** Print a progress line to stderr this often (seconds); 0 for none. */
  progressSeconds: number;
}

export interface Crash {
  kind: 'exception' | 'slow' | 'hang' | 'out-of-memory' | 'worker-error';
  message: string;
  file: string;
  input: string;
}

export interface FuzzResult {
  target: string;
  inputs: number;
  seconds: number;
  execPerSecond: number;
  corpus: number;
  savedToCorpus: number;
  branchesCovered: number;
  branchesTotal: number;
  statementsCovered: number;
  statementsTotal: number;
  peakHeapMb: number;
  crashes: Crash[];
}

const MAX_INPUT = 64 * 1024;

// Shared with the parent: [0] inputs run, [1] length of the current input, [2] stop request.
const I_RUNS = 0, I_LEN = 1, I_STOP = 2;

/** Saves a crashing input under crashDir, named by its hash; returns the path. */
function saveCrash(dir: string, input: Uint8Array): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, createHash('sha1').update(input).digest('hex').slice(0, 16));
  writeFileSync(file, input);
  return file;
}

/** A printable form of an input for the report: JSON string when it is UTF-8 text, else hex. */
export function showInput(input: Uint8Array): string {
  const buf = Buffer.from(input);
  const text = buf.toString('utf8');
  const shown = Buffer.from(text, 'utf8').equals(buf) ? JSON.stringify(text) : `hex:${buf.toString('hex')}`;
  return shown.length > 600 ? shown.slice(0, 600) + `… (${buf.length} bytes)` : shown;
}

/** Runs one target in a worker thread; resolves when it has finished, crashed hard or hung. */
export function runTarget(opts: FuzzOptions): Promise<FuzzResult> {
  const shared = new SharedArrayBuffer(12 + MAX_INPUT);
  const counters = new Int32Array(shared, 0, 3);
  const current = new Uint8Array(shared, 12, MAX_INPUT);
  const worker = new Worker(new URL('./worker.js', import.meta.url), {
    workerData: { opts, shared },
    resourceLimits: { maxOldGenerationSizeMb: opts.heapLimitMb },
    stdout: false,
    stderr: false,
  });
  const started = Date.now();
  return new Promise((resolve) => {
    let last: FuzzResult | null = null;
    let lastRuns = -1;
    let lastChange = Date.now();
    let done = false;
    const currentInput = () => current.slice(0, Math.min(Atomics.load(counters, I_LEN), MAX_INPUT));
    const finish = (crash: Crash | null) => {
      if (done) return;
      done = true;
      clearInterval(watch);
      const seconds = (Date.now() - started) / 1000;
      const inputs = Atomics.load(counters, I_RUNS);
      const result: FuzzResult = last ?? {
        target: opts.target, inputs, seconds, execPerSecond: inputs / seconds, corpus: 0, savedToCorpus: 0,
        branchesCovered: 0, branchesTotal: 0, statementsCovered: 0, statementsTotal: 0, peakHeapMb: 0, crashes: [],
      };
      if (crash) result.crashes.push(crash);
      resolve(result);
    };
    const watch = setInterval(() => {
      const runs = Atomics.load(counters, I_RUNS);
      if (runs !== lastRuns) { lastRuns = runs; lastChange = Date.now(); return; }
      if (Date.now() - lastChange < opts.hangMs) return;
      const input = currentInput();
      const file = saveCrash(join(opts.crashDir, opts.target), input);
      void worker.terminate();
      finish({ kind: 'hang', message: `no input finished for ${opts.hangMs} ms`, file, input: showInput(input) });
    }, Math.min(1000, opts.hangMs / 4));
    worker.on('message', (m: { kind: string; result?: FuzzResult; line?: string }) => {
      if (m.kind === 'result') last = m.result!;
      else if (m.kind === 'progress') process.stderr.write(m.line + '\n');
    });
    worker.on('error', (err: Error & { code?: string }) => {
      const input = currentInput();
      const file = saveCrash(join(opts.crashDir, opts.target), input);
      const kind = err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'out-of-memory' : 'worker-error';
      finish({ kind, message: String(err.stack ?? err), file, input: showInput(input) });
    });
    worker.on('exit', () => finish(null));
  });
}

// ---- worker side ---------------------------------------------------------------------------------

/** xorshift32: fast, seedable, good enough to pick mutations. */
class Rng {
  private s: number;
  constructor(seed: number) { this.s = (seed >>> 0) || 0x9e3779b9; }
  next(): number {
    let s = this.s;
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    return (this.s = s >>> 0);
  }
  below(n: number): number { return n <= 1 ? 0 : this.next() % n; }
}

/** Hit-count buckets as AFL uses them: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+. */
function bucket(v: number): number {
  return v < 4 ? (v === 3 ? 4 : v) : v < 8 ? 8 : v < 16 ? 16 : v < 32 ? 32 : v < 128 ? 64 : 128;
}

/**
 * Reads the coverage counters after an input and resets them. Returns 2 when the input reached a
 * statement or branch never reached before, 1 when it only reached a new hit-count bucket, 0 otherwise.
 */
class Coverage {
  private readonly files: { s: Record<number, number>; ns: number; b: number[][] }[];
  private readonly seen: Uint8Array;
  readonly statements: number;
  readonly branches: number;
  private readonly targetStatements: Set<number>;
  private readonly targetBranches: Set<number>;

  constructor(all: FileCoverage[], targetFiles: string[]) {
    this.files = [];
    let statements = 0, branches = 0;
    this.targetStatements = new Set();
    this.targetBranches = new Set();
    for (const f of all) {
      const ns = Object.keys(f.s).length;
      const b = Object.keys(f.b).map((k) => f.b[Number(k)]!);
      const mine = targetFiles.some((t) => f.path === `protocol/${t}.js`);
      const base = statements + branches;
      let id = base;
      for (let i = 0; i < ns; i++, id++) if (mine) this.targetStatements.add(id);
      for (const arr of b) for (let j = 0; j < arr.length; j++, id++) if (mine) this.targetBranches.add(id);
      statements += ns;
      branches += b.reduce((n, arr) => n + arr.length, 0);
      this.files.push({ s: f.s, ns, b });
    }
    this.statements = statements;
    this.branches = branches;
    this.seen = new Uint8Array(statements + branches);
  }

  collect(): number {
    const seen = this.seen;
    let fresh = 0;
    let id = 0;
    for (const f of this.files) {
      const s = f.s;
      for (let i = 0; i < f.ns; i++, id++) {
        const v = s[i]!;
        if (v === 0) continue;
        s[i] = 0;
        const bit = bucket(v);
        const old = seen[id]!;
        if ((old & bit) === 0) { seen[id] = old | bit; fresh = old === 0 ? 2 : fresh || 1; }
      }
      for (const arr of f.b) {
        for (let j = 0; j < arr.length; j++, id++) {
          const v = arr[j]!;
          if (v === 0) continue;
          arr[j] = 0;
          const bit = bucket(v);
          const old = seen[id]!;
          if ((old & bit) === 0) { seen[id] = old | bit; fresh = old === 0 ? 2 : fresh || 1; }
        }
      }
    }
    return fresh;
  }

  covered(ids: Set<number>): number {
    let n = 0;
    for (const id of ids) if (this.seen[id] !== 0) n++;
    return n;
  }

  report() {
    return {
      statementsCovered: this.covered(this.targetStatements), statementsTotal: this.targetStatements.size,
      branchesCovered: this.covered(this.targetBranches), branchesTotal: this.targetBranches.size,
    };
  }
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x20, 0x0a, 0x3c, 0x3e, 0x26, 0x3b, 0x22, 0x27, 0x3d, 0x2c, 0x2f, 0x40, 0x00];

class Mutator {
  private readonly dict: Buffer[];
  constructor(private readonly rng: Rng, dictionary: string[], private readonly maxLen: number) {
    this.dict = dictionary.map((d) => Buffer.from(d, 'utf8'));
  }

  /** One to eight stacked mutations of base, sometimes spliced with other. */
  mutate(base: Uint8Array, other: Uint8Array): Buffer {
    const r = this.rng;
    let data: Buffer = Buffer.from(base);
    const rounds = 1 << r.below(4);
    for (let k = 0; k < rounds; k++) data = this.once(data, other);
    return data.length > this.maxLen ? data.subarray(0, this.maxLen) : data;
  }

  private once(d: Buffer, other: Uint8Array): Buffer {
    const r = this.rng;
    const len = d.length;
    switch (r.below(12)) {
      case 0: // flip a bit
        if (len) d[r.below(len)] ^= 1 << r.below(8);
        return d;
      case 1: // replace a byte
        if (len) d[r.below(len)] = r.below(2) ? INTERESTING[r.below(INTERESTING.length)]! : r.below(256);
        return d;
      case 2: { // insert bytes
        const at = r.below(len + 1);
        const n = 1 + r.below(4);
        const ins = Buffer.alloc(n);
        for (let i = 0; i < n; i++) ins[i] = r.below(2) ? INTERESTING[r.below(INTERESTING.length)]! : r.below(256);
        return Buffer.concat([d.subarray(0, at), ins, d.subarray(at)]);
      }
      case 3: { // delete a range
        if (!len) return d;
        const at = r.below(len);
        const n = 1 + r.below(Math.min(16, len - at));
        return Buffer.concat([d.subarray(0, at), d.subarray(at + n)]);
      }
      case 4: case 5: case 6: { // insert or overwrite with a dictionary token
        if (!this.dict.length) return d;
        const tok = this.dict[r.below(this.dict.length)]!;
        const at = r.below(len + 1);
        if (r.below(3) === 0 && at + tok.length <= len) { tok.copy(d, at); return d; }
        return Buffer.concat([d.subarray(0, at), tok, d.subarray(at)]);
      }
      case 7: { // duplicate a range (repetition finds limits and super-linear paths)
        if (!len) return d;
        const at = r.below(len);
        const n = 1 + r.below(Math.min(64, len - at));
        const times = 1 + r.below(r.below(8) === 0 ? 64 : 4);
        const parts = [d.subarray(0, at + n)];
        for (let i = 0; i < times; i++) parts.push(d.subarray(at, at + n));
        parts.push(d.subarray(at + n));
        return Buffer.concat(parts);
      }
      case 8: { // splice: head of this, tail of another corpus entry
        const a = r.below(len + 1);
        const b = r.below(other.length + 1);
        return Buffer.concat([d.subarray(0, a), other.subarray(b)]);
      }
      case 9: { // copy a range of another entry into the middle
        if (!other.length) return d;
        const b = r.below(other.length);
        const n = 1 + r.below(Math.min(64, other.length - b));
        const at = r.below(len + 1);
        return Buffer.concat([d.subarray(0, at), other.subarray(b, b + n), d.subarray(at)]);
      }
      case 10: { // swap two bytes, or shuffle a small range
        if (len < 2) return d;
        const i = r.below(len), j = r.below(len);
        const t = d[i]!; d[i] = d[j]!; d[j] = t;
        return d;
      }
      default: { // arithmetic on a digit or a byte
        if (!len) return d;
        const i = r.below(len);
        const c = d[i]!;
        d[i] = c >= 0x30 && c <= 0x39 ? 0x30 + r.below(10) : (c + (r.below(2) ? 1 : 255)) & 0xff;
        return d;
      }
    }
  }
}

function loadCorpus(dir: string): Buffer[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).sort().map((f) => readFileSync(join(dir, f)));
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return `non-Error thrown: ${String(err)}`;
}

/** Where a thrown error comes from, to report each defect once rather than once per input. */
function signature(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const frame = (err.stack ?? '').split('\n').find((l) => l.trim().startsWith('at ')) ?? '';
  return `${err.name}|${err instanceof Error && err.name === 'Violation' ? err.message.slice(0, 60).replace(/[0-9]+/g, 'N') : ''}|${frame.trim()}`;
}

export interface WorkerData { opts: FuzzOptions; shared: SharedArrayBuffer }

/** The fuzzing loop, run inside the worker; posts progress lines and the final result to the parent. */
export async function fuzzLoop(target: FuzzTarget, run: RunInput, data: WorkerData, post: (m: unknown) => void): Promise<void> {
  const { opts } = data;
  const counters = new Int32Array(data.shared, 0, 3);
  const current = new Uint8Array(data.shared, 12, MAX_INPUT);
  const maxLen = Math.min(target.maxLen ?? 4096, MAX_INPUT);
  const rng = new Rng(opts.seed);
  const mutator = new Mutator(rng, target.dictionary, maxLen);
  const coverage = new Coverage(coverageFiles(), target.files);
  coverage.collect(); // module loading and setup are nobody's input
  const crashes: Crash[] = [];
  const seenCrashes = new Set<string>();
  const corpus: Buffer[] = [];
  const corpusDir = join(opts.corpusDir, target.name);
  const started = performance.now();
  let inputs = 0;
  let saved = 0;
  let peakHeap = 0;
  let lastProgress = started;

  const exec = async (input: Buffer): Promise<number> => {
    current.set(input.subarray(0, MAX_INPUT));
    Atomics.store(counters, I_LEN, input.length);
    const t0 = performance.now();
    let failure: unknown = null;
    try {
      const r = run(input);
      if (r) await r;
    } catch (err) {
      failure = err ?? new Error('thrown: ' + String(err));
    }
    let elapsed = performance.now() - t0;
    inputs++;
    Atomics.store(counters, I_RUNS, inputs);
    if (failure === null && elapsed > opts.slowMs) {
      // Once more, to tell a slow input from a pause of the machine or the collector.
      const t1 = performance.now();
      try { const r = run(input); if (r) await r; } catch { /* reported on its own */ }
      elapsed = Math.min(elapsed, performance.now() - t1);
      if (elapsed > opts.slowMs) failure = Object.assign(new Error(`one input took ${elapsed.toFixed(0)} ms (limit ${opts.slowMs})`), { name: 'Slow' });
    }
    const fresh = coverage.collect();
    if (failure !== null && Error.stackTraceLimit === 0) {
      // Stack traces are off while fuzzing (codecs throw their documented errors all the time, and
      // capturing stacks was most of the cost); the failing input runs once more to get one.
      Error.stackTraceLimit = 20;
      try { const r = run(input); if (r) await r; } catch (err) { failure = err ?? failure; }
      Error.stackTraceLimit = 0;
      coverage.collect();
    }
    if (failure !== null) {
      const sig = signature(failure);
      if (!seenCrashes.has(sig)) {
        seenCrashes.add(sig);
        const file = saveCrash(join(opts.crashDir, target.name), input);
        const kind = failure instanceof Error && failure.name === 'Slow' ? 'slow' : 'exception';
        crashes.push({ kind, message: describe(failure), file, input: showInput(input) });
      }
      return 0;
    }
    return fresh;
  };

  const keep = (input: Buffer, fresh: number, seed: boolean) => {
    corpus.push(input);
    if (opts.save && fresh === 2 && !seed) {
      mkdirSync(corpusDir, { recursive: true });
      writeFileSync(join(corpusDir, createHash('sha1').update(input).digest('hex').slice(0, 16)), input);
      saved++;
    }
  };

  const outOfBudget = () =>
    (opts.runs > 0 && inputs >= opts.runs) ||
    (opts.seconds > 0 && performance.now() - started >= opts.seconds * 1000) ||
    Atomics.load(counters, I_STOP) !== 0;

  Error.stackTraceLimit = 0;
  for (const seed of loadCorpus(corpusDir)) {
    const input = seed.length > maxLen ? seed.subarray(0, maxLen) : seed;
    const fresh = await exec(input);
    keep(input, fresh, true);
  }
  if (corpus.length === 0) keep(Buffer.alloc(0), await exec(Buffer.alloc(0)), true);

  const progress = () => {
    const secs = (performance.now() - started) / 1000;
    const c = coverage.report();
    return `${target.name}: ${inputs} inputs, ${(inputs / secs).toFixed(0)}/s, corpus ${corpus.length}, ` +
      `branches ${c.branchesCovered}/${c.branchesTotal}, crashes ${crashes.length}, ${secs.toFixed(0)} s`;
  };

  while (!outOfBudget()) {
    for (let k = 0; k < 256 && !outOfBudget(); k++) {
      const base = corpus[rng.below(corpus.length)]!;
      const other = corpus[rng.below(corpus.length)]!;
      const input = mutator.mutate(base, other);
      const fresh = await exec(input);
      if (fresh) keep(input, fresh, false);
    }
    if ((inputs & 0x3fff) < 256) peakHeap = Math.max(peakHeap, getHeapStatistics().used_heap_size);
    const now = performance.now();
    if (opts.progressSeconds > 0 && now - lastProgress >= opts.progressSeconds * 1000) {
      lastProgress = now;
      post({ kind: 'progress', line: progress() });
    }
  }
  peakHeap = Math.max(peakHeap, getHeapStatistics().used_heap_size);
  const seconds = (performance.now() - started) / 1000;
  const result: FuzzResult = {
    target: target.name, inputs, seconds, execPerSecond: inputs / seconds, corpus: corpus.length, savedToCorpus: saved,
    ...coverage.report(), peakHeapMb: peakHeap / 2 ** 20, crashes,
  };
  post({ kind: 'result', result });
}
