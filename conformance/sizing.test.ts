// The sizing benchmark's short form (bench/sizing.mjs --short, smaller still): correctness at a size a CI
// run can afford, not timing. Every session binds on one node and on two, every occupant of a room above
// the participant update limit gets a post, every room is created, stored, loaded, unloaded when idle and
// loaded again by the messages, and every message across the rooms arrives. The full figures are in
// docs/benchmarks.md (the sizing section).
import { expect } from 'chai';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IN_CI, servicesAvailable } from './harness.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

interface SizingResult {
  checks: { name: string; ok: boolean; detail?: string }[];
  cases: Record<string, Record<string, unknown>>;
}

function missingTools(): string | null {
  try { execFileSync('redis-server', ['--version'], { stdio: 'ignore' }); } catch { return 'redis-server is not installed'; }
  return null;
}

describe('conformance: sizing (bench/sizing.mjs, short form)', function () {
  this.timeout(180_000);

  it('binds every session, reaches every occupant, loads and unloads every room, delivers every message', async function () {
    const missing = missingTools() ?? (await servicesAvailable());
    if (missing) {
      if (IN_CI) throw new Error(`the sizing check needs PostgreSQL and redis-server (CI=true): ${missing}`);
      console.warn(`    skipping the sizing check: ${missing}`);
      this.skip();
    }
    const dir = mkdtempSync(path.join(tmpdir(), 'perch-sizing-test-'));
    const json = path.join(dir, 'sizing.json');
    let child: ChildProcess | undefined;
    try {
      const args = ['bench/sizing.mjs', '--short', '--check', '--no-docs', '--json', json,
        '--sessions', '500', '--occupants', '300', '--rooms', '1000', '--minutes', '0.17', '--idle-window', '5', '--ping-seconds', '5', '--idle-unload', '5', '--chat-sessions', '60'];
      const out: string[] = [];
      const code = await new Promise<number | null>((resolve) => {
        child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
        child.stdout!.on('data', (d: Buffer) => out.push(d.toString()));
        child.stderr!.on('data', (d: Buffer) => out.push(d.toString()));
        child.on('exit', resolve);
      });
      const log = out.join('').split('\n').filter((l) => !l.startsWith('{')).join('\n');
      const result = JSON.parse(readFileSync(json, 'utf8')) as SizingResult;
      const failed = result.checks.filter((c) => !c.ok).map((c) => `${c.name} (${c.detail ?? ''})`);
      expect(failed, log).to.deep.equal([]);
      expect(code, log).to.equal(0);
      expect(Object.keys(result.cases).sort(), log).to.deep.equal(['room', 'rooms', 'sessions', 'sessions2']);
      // one check per promise above, so that a case that stopped early shows here
      expect(result.checks.length, log).to.be.at.least(12);
    } finally {
      // timed out: the script stops its servers and drops its database on SIGTERM
      if (child && child.exitCode === null) child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
