// The protocol fuzzer's short run in CI: every target for three seconds over its committed corpus, with
// fresh mutations; any exception, inconsistent result, slow input, hang or memory blow-up fails the test.
// Long runs (10 million inputs per target) are made by hand: npm run fuzz -- all --runs 10000000.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../fuzz/cli.js', import.meta.url));
// Ten targets at three seconds each, plus instrumenting and starting a worker per target: under a minute.
const SECONDS_PER_TARGET = 3;

interface Result { target: string; inputs: number; corpus: number; branchesCovered: number; crashes: { kind: string; message: string; input: string }[] }

describe('protocol fuzzer (short run)', function () {
  this.timeout(180_000);

  it('runs every target without a crash, hang or blow-up', async () => {
    const crashes = mkdtempSync(join(tmpdir(), 'perch-fuzz-crashes-'));
    try {
      const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'all', '--seconds', String(SECONDS_PER_TARGET), '--no-save', '--json', '--crashes', crashes]);
        let stdout = '', stderr = '';
        child.stdout.on('data', (d) => { stdout += d; });
        child.stderr.on('data', (d) => { stderr += d; });
        child.on('close', (c) => resolve({ code: c, stdout, stderr }));
      });
      const results = JSON.parse(stdout) as Result[];
      const found = results.flatMap((r) => r.crashes.map((c) => `${r.target}: ${c.kind} on ${c.input}\n${c.message}`));
      expect(found, stderr).to.deep.equal([]);
      expect(code).to.equal(0);
      expect(results.length).to.be.at.least(10);
      for (const r of results) {
        expect(r.inputs, r.target).to.be.greaterThan(1000);
        expect(r.branchesCovered, r.target).to.be.greaterThan(0);
      }
    } finally {
      rmSync(crashes, { recursive: true, force: true });
    }
  });
});
