// A process killed while PGlite initialises a new database directory leaves nothing the next open
// trips on. Before, PGlite's initdb wrote PG_VERSION early, into the directory itself; killed after
// that, the directory passed for a database and PGlite failed to open it ("Cannot read properties of
// undefined (reading 'call')", one kill in four by hand). Now initdb runs beside it and is moved in
// whole.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openPglite } from '../storage/db-pglite.js';

const DB_PGLITE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'storage', 'db-pglite.js');

/** Runs openPglite(dir) in a child and kills it with SIGKILL once PG_VERSION appears anywhere it may. */
async function killDuringInit(dir: string): Promise<void> {
  const child = spawn(process.execPath, ['--input-type=module', '-e',
    `const m = await import(${JSON.stringify(DB_PGLITE)}); await m.openPglite(${JSON.stringify(dir)}); setInterval(() => {}, 1000);`],
  { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 60_000;
  while (child.exitCode === null && Date.now() < deadline) {
    if (existsSync(path.join(dir, 'PG_VERSION')) || existsSync(path.join(`${dir}.init`, 'PG_VERSION'))) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill('SIGKILL');
  await exited;
}

describe('PGlite: a database directory whose initialisation was killed', function () {
  this.timeout(180_000);
  let root = '';
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'perch-pglite-init-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  for (let round = 1; round <= 3; round++) {
    it(`opens after a kill -9 during initdb (round ${round})`, async () => {
      const dir = path.join(root, `r${round}`, 'pglite');
      await mkdir(dir, { recursive: true }); // as openDataStores does
      await killDuringInit(dir);
      const db = await openPglite(dir);
      try {
        expect(await db.query<{ x: number }>('SELECT 1 AS x')).to.deep.equal([{ x: 1 }]);
      } finally {
        await db.close();
      }
      expect(existsSync(`${dir}.init`), 'the staging directory is gone').to.equal(false);
    });
  }
});
