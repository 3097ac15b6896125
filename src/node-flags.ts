// The Node.js flags every Perch process runs with: `npm start`, the perch executable (its #! line)
// and each worker `perch start --workers N` forks. Node takes them only on its command line, so the
// first two repeat them literally; test/node-flags.test.ts checks that they agree with this list.

/**
 * One V8 background thread per process instead of Node's four. V8 compiles hot functions and helps
 * its garbage collector on these threads; right after a start, four of them compiling at once took the
 * cores from the event loop (and from PostgreSQL and Redis beside it) on a two-core machine. The first
 * 200 room joins on a fresh server: p99 19.4 ms, 14.3 ms with one thread (bench/room-join.mjs, 4 rounds;
 * 0.62–0.79× over three runs), the background threads' CPU 140 → 70 ms, the same CPU per warm join;
 * one-to-one chat at saturation 1.01× (bench/archive-lanes.mjs). Perch uses more cores with more
 * workers, each with its own thread.
 */
export const NODE_FLAGS: readonly string[] = ['--v8-pool-size=1'];

/**
 * argv (a process's execArgv) with each of NODE_FLAGS that neither argv nor NODE_OPTIONS sets already:
 * a flag on the command line would win over the operator's NODE_OPTIONS.
 */
export function withNodeFlags(argv: readonly string[], nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = [...argv, ...nodeOptions.split(/\s+/)];
  const out = [...argv];
  for (const flag of NODE_FLAGS) {
    const name = flag.split('=')[0]!;
    if (!given.some((a) => a === name || a.startsWith(`${name}=`))) out.push(flag);
  }
  return out;
}
