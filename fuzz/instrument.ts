// Copies the compiled protocol/ modules into a scratch directory with branch and statement counters
// added (istanbul's instrumenter), so that the fuzzer can see which paths an input took. The copies keep
// their relative imports, so they load one another; the rest of Perch never sees them.
import { readdirSync, readFileSync, writeFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInstrumenter } from 'istanbul-lib-instrument';
import { fileURLToPath } from 'node:url';

export const COVERAGE_VARIABLE = '__perchFuzzCoverage';

/** dist/protocol, next to dist/fuzz where this file runs from. */
export const PROTOCOL_DIST = fileURLToPath(new URL('../protocol/', import.meta.url));

/**
 * Copies every protocol module, with counters in those named in `only` (file names without .js; all
 * when absent); returns the directory holding the copies (remove it when done). Counters cost time on
 * every statement, so a target pays only for the files whose paths it is meant to explore.
 */
export function instrumentProtocol(only?: readonly string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'perch-fuzz-'));
  const out = join(root, 'protocol');
  mkdirSync(out);
  const instrumenter = createInstrumenter({
    coverageVariable: COVERAGE_VARIABLE,
    esModules: true,
    compact: true,
    produceSourceMap: false,
    preserveComments: false,
  });
  for (const name of readdirSync(PROTOCOL_DIST)) {
    if (!name.endsWith('.js')) continue;
    const source = readFileSync(join(PROTOCOL_DIST, name), 'utf8').replace(/\n\/\/# sourceMappingURL=.*$/, '\n');
    const wanted = !only || only.includes(name.slice(0, -3));
    writeFileSync(join(out, name), wanted ? instrumenter.instrumentSync(source, `protocol/${name}`) : source);
  }
  return root;
}

export function removeInstrumented(root: string): void {
  rmSync(root, { recursive: true, force: true });
}

/** The counters istanbul keeps for one file. */
export interface FileCoverage {
  path: string;
  s: Record<number, number>;
  b: Record<number, number[]>;
}

export function coverageFiles(): FileCoverage[] {
  const all = (globalThis as Record<string, unknown>)[COVERAGE_VARIABLE] as Record<string, FileCoverage> | undefined;
  return all ? Object.values(all) : [];
}
