// The exporter's side of the compliance store on PGlite and PostgreSQL: the lease (one holder, renewal,
// lapse, who holds it) and the planned file paths of an unfinished run. PostgreSQL skips with a warning
// when unreachable, except in CI where it fails.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPglite } from '../storage/db-pglite.js';
import { openPostgres } from '../storage/db-postgres.js';
import { migrate } from '../storage/migrations.js';
import { createSqlStores } from '../storage/sql-stores.js';
import type { ComplianceStore, Db } from '../storage/types.js';
import { DATABASE_URL, probePostgres } from './services.js';

const backends: { name: string; probe?: () => Promise<void>; open(): Promise<{ db: Db; dispose(): Promise<void> }> }[] = [
  {
    name: 'PGlite (temp dir)',
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'perch-clease-'));
      const db = await openPglite(dir);
      return { db, async dispose() { await db.close(); await rm(dir, { recursive: true, force: true }); } };
    },
  },
  {
    name: 'PostgreSQL',
    probe: probePostgres,
    async open() {
      const schema = `perch_clease_test_${randomBytes(6).toString('hex')}`;
      const db = await openPostgres(DATABASE_URL, { schema });
      return { db, async dispose() { await db.query(`DROP SCHEMA ${schema} CASCADE`); await db.close(); } };
    },
  },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('compliance store: the exporter lease and planned files', function () {
  this.timeout(60000);
  for (const backend of backends) {
    describe(backend.name, function () {
      let opened: { db: Db; dispose(): Promise<void> } | undefined;
      let store: ComplianceStore;
      before(async function () {
        if (backend.probe) {
          try {
            await backend.probe();
          } catch (err) {
            const why = err instanceof Error ? err.message : String(err);
            if (process.env.CI === 'true') throw new Error(`${backend.name} at ${DATABASE_URL} is required in CI but unreachable: ${why}`);
            console.warn(`    ${backend.name} unreachable (${why}): skipping its suite`);
            this.skip();
          }
        }
        opened = await backend.open();
        await migrate(opened.db);
        store = createSqlStores(opened.db).compliance;
      });
      after(async () => { await opened?.dispose(); });

      it('gives the lease to one holder until it lapses, and says who holds it', async () => {
        expect(await store.leaseHolder()).to.equal(null);
        expect(await store.claimLease('a', 400)).to.equal(true);
        expect(await store.claimLease('b', 400)).to.equal(false);
        expect(await store.claimLease('a', 400)).to.equal(true);
        expect((await store.leaseHolder())!.holder).to.equal('a');
        await sleep(600);
        expect(await store.leaseHolder()).to.equal(null);
        expect(await store.claimLease('b', 10_000)).to.equal(true);
        await store.releaseLease('a');
        expect((await store.leaseHolder())!.holder).to.equal('b');
        await store.releaseLease('b');
        expect(await store.leaseHolder()).to.equal(null);
      });

      it('keeps the planned paths of an unfinished run, and the names once it is finished', async () => {
        await store.append([{ kind: 'chat', stamp: new Date(), room: 'r@c.example.org', actor: 'a@example.org', nick: 'a', content: 'x', messageId: null, detail: null }]);
        const run = (await store.openRun('a'))!;
        await store.planRunFiles(run.id, ['/out/perch-compliance-1.xml']);
        expect((await store.unfinishedRun())!.files).to.deep.equal(['/out/perch-compliance-1.xml']);
        await store.finishRun(run.id, ['perch-compliance-1.xml'], 1, {});
        await store.planRunFiles(run.id, ['/elsewhere']);
        expect((await store.runs(1))[0]!.files).to.deep.equal(['perch-compliance-1.xml']);
        expect(await store.count()).to.equal(0);
      });
    });
  }
});
