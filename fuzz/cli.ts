// npm run fuzz -- <target|all> [--runs N] [--seconds S] ...: runs the coverage-guided fuzzer on the
// protocol/ codecs, one target at a time, and prints a table of the figures. Exits 1 when any target
// crashed, hung, ran out of memory or was too slow on one input.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { instrumentProtocol, removeInstrumented } from './instrument.js';
import { runTarget, type FuzzOptions, type FuzzResult } from './engine.js';
import { TARGETS } from './targets/index.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

const HELP = `Usage: npm run fuzz -- <target|all> [options]

Targets: ${TARGETS.map((t) => t.name).join(', ')}

Options:
  --runs N          stop each target after N inputs (default: no limit)
  --seconds S       stop each target after S seconds (default: 60 when --runs is not given)
  --seed N          random seed (default: from the clock)
  --no-save         do not add inputs reaching new code to fuzz/corpus/<target>/
  --corpus DIR      corpus directory (default: fuzz/corpus)
  --crashes DIR     where crashing inputs are saved (default: fuzz/crashes)
  --slow-ms MS      one input taking longer is a defect (default: 1000)
  --hang-ms MS      no progress for this long is a hang (default: 10000)
  --heap-mb MB      heap limit of the worker (default: 1024)
  --progress S      progress line on stderr every S seconds (default: 0, none)
  --repro FILE      run the target once on FILE and print what it throws
  --json            print the results as JSON instead of a table
  --help            this text
`;

function parseArgs(argv: string[]) {
  const a = { targets: [] as string[], runs: 0, seconds: -1, seed: Date.now() >>> 0, save: true, corpus: join(REPO, 'fuzz/corpus'),
    crashes: join(REPO, 'fuzz/crashes'), slowMs: 1000, hangMs: 10000, heapMb: 1024, progress: 0, repro: '', json: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    const num = () => {
      const v = Number(value());
      if (!Number.isFinite(v) || v < 0) throw new Error(`${arg} needs a non-negative number`);
      return v;
    };
    switch (arg) {
      case '--runs': a.runs = num(); break;
      case '--seconds': a.seconds = num(); break;
      case '--seed': a.seed = num(); break;
      case '--no-save': a.save = false; break;
      case '--corpus': a.corpus = value(); break;
      case '--crashes': a.crashes = value(); break;
      case '--slow-ms': a.slowMs = num(); break;
      case '--hang-ms': a.hangMs = num(); break;
      case '--heap-mb': a.heapMb = num(); break;
      case '--progress': a.progress = num(); break;
      case '--repro': a.repro = value(); break;
      case '--json': a.json = true; break;
      case '--help': case '-h': a.help = true; break;
      default:
        if (arg.startsWith('-')) throw new Error(`unknown option ${arg}`);
        a.targets.push(arg);
    }
  }
  if (a.seconds < 0) a.seconds = a.runs > 0 ? 0 : 60;
  return a;
}

function table(results: FuzzResult[]): string {
  const head = ['target', 'inputs', 'exec/s', 'corpus', 'new', 'branches', 'statements', 'heap MB', 'seconds', 'crashes'];
  const rows = results.map((r) => [
    r.target, String(r.inputs), r.execPerSecond.toFixed(0), String(r.corpus), String(r.savedToCorpus),
    `${r.branchesCovered}/${r.branchesTotal}`, `${r.statementsCovered}/${r.statementsTotal}`, r.peakHeapMb.toFixed(0),
    r.seconds.toFixed(0), String(r.crashes.length),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (args.help || args.targets.length === 0) {
    process.stdout.write(HELP);
    return args.help ? 0 : 2;
  }
  const names = args.targets.includes('all') ? TARGETS.map((t) => t.name) : args.targets;
  for (const n of names) {
    if (!TARGETS.some((t) => t.name === n)) {
      process.stderr.write(`unknown target ${n}; targets: ${TARGETS.map((t) => t.name).join(', ')}\n`);
      return 2;
    }
  }
  if (args.repro) {
    const root = instrumentProtocol();
    try {
      return await repro(names[0]!, args.repro, root);
    } finally {
      removeInstrumented(root);
    }
  }
  const results: FuzzResult[] = [];
  for (const target of names) {
    const root = instrumentProtocol(TARGETS.find((t) => t.name === target)!.files);
    try {
      const opts: FuzzOptions = {
        target, runs: args.runs, seconds: args.seconds, corpusDir: args.corpus, crashDir: args.crashes, save: args.save,
        seed: args.seed, slowMs: args.slowMs, hangMs: args.hangMs, heapLimitMb: args.heapMb, instrumentedRoot: root,
        progressSeconds: args.progress,
      };
      const r = await runTarget(opts);
      results.push(r);
      for (const c of r.crashes) {
        process.stderr.write(`\n${target}: ${c.kind}, input saved as ${c.file}\n  input: ${c.input}\n  ${c.message.split('\n').slice(0, 8).join('\n  ')}\n`);
      }
      if (!args.json) process.stderr.write(`${target}: done, ${r.inputs} inputs\n`);
    } finally {
      removeInstrumented(root);
    }
  }
  process.stdout.write(args.json ? JSON.stringify(results, null, 2) + '\n' : table(results) + '\n');
  return results.some((r) => r.crashes.length > 0) ? 1 : 0;
}

/** Runs one saved input through the target in this thread and prints the outcome. */
async function repro(name: string, file: string, root: string): Promise<number> {
  const { PROTOCOL_MODULES } = await import('./target.js');
  const { pathToFileURL } = await import('node:url');
  const protocol: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(PROTOCOL_MODULES)) {
    protocol[key] = await import(pathToFileURL(join(root, 'protocol', `${f}.js`)).href);
  }
  const target = TARGETS.find((t) => t.name === name)!;
  const run = await target.setup(protocol as never);
  const input = readFileSync(file);
  const t0 = performance.now();
  try {
    await run(input);
    process.stdout.write(`${name}: no failure (${(performance.now() - t0).toFixed(1)} ms)\n`);
    return 0;
  } catch (err) {
    process.stdout.write(`${name}: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}

process.exitCode = await main();
