// The kernel's import graph: no circles among src/ files, and the wire library (protocol/) and the
// stores (storage/) depend on nothing of ours outside themselves. Reads the TypeScript sources, type
// imports included: a circle of types is still two files that cannot change apart.
import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/**
 * The room core and its event table name each other's types by design (an event carries its room);
 * rooms have their own rule below: the core imports no feature, and features never import each other.
 */
const EXCLUDED = ['src/muc/'];

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(ROOT, dir))) {
    const rel = `${dir}/${name}`;
    if (statSync(path.join(ROOT, rel)).isDirectory()) out.push(...sourceFiles(rel));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The repository files one source file imports (relative specifiers only; packages are not ours). */
function importsOf(file: string, text: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2]!;
    if (!spec.startsWith('.')) continue;
    out.add(path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts'));
  }
  return [...out];
}

/** One circle in the graph as a path that starts and ends at the same file, or null. */
function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | null => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      const s = state.get(next);
      if (s === 'open') return [...stack.slice(stack.indexOf(next)), next];
      if (s === undefined) {
        const found = visit(next);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(node, 'done');
    return null;
  };
  for (const node of [...graph.keys()].sort()) {
    if (state.has(node)) continue;
    const found = visit(node);
    if (found) return found;
  }
  return null;
}

function graphOf(dirs: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const dir of dirs) {
    for (const file of sourceFiles(dir)) {
      graph.set(file, importsOf(file, readFileSync(path.join(ROOT, file), 'utf8')));
    }
  }
  return graph;
}

describe('import graph', () => {
  it('finds a circle when there is one, and reads type imports and re-exports', () => {
    const a = importsOf('src/a.ts', "import type { B } from './b.js';\nexport { C } from '../protocol/c.js';\nimport x from 'node:fs';");
    expect(a).to.deep.equal(['src/b.ts', 'protocol/c.ts']);
    const graph = new Map([['src/a.ts', a], ['src/b.ts', ['src/a.ts']], ['protocol/c.ts', []]]);
    expect(findCycle(graph)).to.deep.equal(['src/a.ts', 'src/b.ts', 'src/a.ts']);
    graph.set('src/b.ts', []);
    expect(findCycle(graph)).to.equal(null);
  });

  it('has no circle among the kernel files under src/ (rooms left out)', () => {
    const graph = graphOf(['src']);
    for (const file of [...graph.keys()]) {
      if (EXCLUDED.some((p) => file.startsWith(p))) graph.delete(file);
    }
    expect(graph.size).to.be.greaterThan(20);
    const cycle = findCycle(graph);
    expect(cycle, cycle ? `import circle: ${cycle.join(' → ')}` : '').to.equal(null);
  });

  it('rooms: the core imports no feature, and no feature imports another', () => {
    const wrong: string[] = [];
    for (const [file, imports] of graphOf(['src'])) {
      const isFeature = file.startsWith('src/muc/features/');
      const isList = file === 'src/muc/features/index.ts';
      for (const target of imports) {
        if (!target.startsWith('src/muc/features/')) continue;
        // The feature list is the one place features are named, and the room module installs that list.
        if (isList || (file === 'src/muc/module.ts' && target === 'src/muc/features/index.ts')) continue;
        wrong.push(`${file} → ${target}${isFeature ? ' (feature imports feature)' : ' (imports a feature)'}`);
      }
    }
    expect(wrong).to.deep.equal([]);
  });

  for (const dir of ['protocol', 'storage']) {
    it(`${dir}/ imports nothing of ours outside itself`, () => {
      const outside: string[] = [];
      for (const [file, imports] of graphOf([dir])) {
        for (const target of imports) if (!target.startsWith(`${dir}/`)) outside.push(`${file} → ${target}`);
      }
      expect(outside).to.deep.equal([]);
    });
  }

  it('has no circle inside protocol/ or storage/', () => {
    const cycle = findCycle(graphOf(['protocol', 'storage']));
    expect(cycle, cycle ? `import circle: ${cycle.join(' → ')}` : '').to.equal(null);
  });
});
