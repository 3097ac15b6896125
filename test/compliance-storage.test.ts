// The compliance store's contract (storage/sql-compliance.ts) on every database backend: the
// append-only event table, the one-row configuration and exporter lease, export runs over a fixed
// range, and the archive's append committing its rows and the compliance events together or not at
// all. PostgreSQL skips with a warning when unreachable, except in CI where it fails.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { DATABASE_URL, probePostgres, requireService } from './services.js';
import { openPglite } from '../storage/db-pglite.js';
import { openPostgres } from '../storage/db-postgres.js';
import { migrate } from '../storage/migrations.js';
import { createSqlStores } from '../storage/sql-stores.js';
import {
  DEFAULT_COMPLIANCE_CONFIG, type ArchiveEntry, type ComplianceEvent, type DataStores, type Db,
} from '../storage/types.js';

const rand = () => randomBytes(6).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Backend {
  name: string;
  probe?: () => Promise<void>;
  open(): Promise<{ db: Db; dispose(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'PGlite (memory)',
    async open() {
      const db = await openPglite(null);
      return { db, dispose: () => db.close() };
    },
  },
  {
    name: 'PostgreSQL',
    probe: probePostgres,
    async open() {
      const schema = `perch_test_${rand()}`;
      const db = await openPostgres(DATABASE_URL, { schema });
      return {
        db,
        async dispose() {
          await db.query(`DROP SCHEMA ${schema} CASCADE`);
          await db.close();
        },
      };
    },
  },
];

function event(kind: ComplianceEvent['kind'], content: string, extra: Partial<ComplianceEvent> = {}): ComplianceEvent {
  return {
    kind, stamp: new Date('2026-03-01T10:00:00.123Z'), room: 'r@conference.localhost', actor: 'ann@localhost', nick: 'ann',
    content, messageId: null, detail: null, ...extra,
  };
}

function entry(stanzaId: string, body: string): ArchiveEntry {
  return {
    archive: 'r@conference.localhost', stanzaId, stamp: new Date(), fromJid: 'r@conference.localhost/ann', realJid: 'ann@localhost',
    body, stanza: `<message type='groupchat'><body>${body}</body></message>`,
  };
}

describe('compliance store contract', function () {
  for (const backend of backends) {
    describe(backend.name, function () {
      let s: DataStores;
      let dispose: (() => Promise<void>) | undefined;

      before(async function () {
        if (backend.probe) await requireService(this, backend.name, DATABASE_URL, backend.probe);
        const o = await backend.open();
        dispose = o.dispose;
        await migrate(o.db);
        s = createSqlStores(o.db);
      });
      after(async function () {
        if (dispose) await dispose();
      });
      beforeEach(async function () {
        await s.db.query('TRUNCATE compliance_events, compliance_runs, archive RESTART IDENTITY');
        await s.db.query("UPDATE compliance_state SET config = '{}', lease_holder = NULL, lease_expires = NULL, last_run_at = NULL");
      });

      it('appends events in order and reads them back by id range, with a limit; counts what waits', async function () {
        expect(await s.compliance.count()).to.equal(0);
        await s.compliance.append([
          event('join', ''),
          event('chat', 'hello', { messageId: 'sid-1' }),
          event('search', 'words', { room: null, nick: null, detail: { fields: { a: ['b'] }, page: 50 } }),
        ]);
        await s.compliance.append([event('part', '')]);
        await s.compliance.append([]);
        const all = await s.compliance.read(0, Number.MAX_SAFE_INTEGER, 100);
        expect(all.map((r) => r.kind)).to.deep.equal(['join', 'chat', 'search', 'part']);
        expect(all.map((r) => r.id)).to.deep.equal([...all.map((r) => r.id)].sort((a, b) => a - b));
        const [, chat, search] = all;
        expect(chat).to.deep.include({ content: 'hello', messageId: 'sid-1', room: 'r@conference.localhost', actor: 'ann@localhost', nick: 'ann', detail: null });
        expect(chat!.stamp.toISOString()).to.equal('2026-03-01T10:00:00.123Z');
        expect(search).to.deep.include({ room: null, nick: null, detail: { fields: { a: ['b'] }, page: 50 } });
        const ids = all.map((r) => r.id);
        expect((await s.compliance.read(ids[0]!, ids[2]!, 100)).map((r) => r.kind)).to.deep.equal(['chat', 'search']);
        expect((await s.compliance.read(0, Number.MAX_SAFE_INTEGER, 2)).map((r) => r.kind)).to.deep.equal(['join', 'chat']);
        expect(await s.compliance.count()).to.equal(4);
      });

      it('keeps one configuration: the defaults until set, then what was set', async function () {
        expect(await s.compliance.getConfig()).to.deep.equal(DEFAULT_COMPLIANCE_CONFIG);
        const next = { ...DEFAULT_COMPLIANCE_CONFIG, enabled: true, format: 'jsonl' as const, runIntervalSeconds: 60, outputDirectory: '/tmp/out' };
        await s.compliance.setConfig(next);
        expect(await s.compliance.getConfig()).to.deep.equal(next);
      });

      it('lease: one holder at a time; the holder renews; it expires; only the holder releases it', async function () {
        expect(await s.compliance.claimLease('a', 10_000)).to.equal(true);
        expect(await s.compliance.claimLease('b', 10_000)).to.equal(false);
        expect(await s.compliance.claimLease('a', 10_000)).to.equal(true);
        await s.compliance.releaseLease('b');
        expect(await s.compliance.claimLease('b', 10_000)).to.equal(false);
        await s.compliance.releaseLease('a');
        expect(await s.compliance.claimLease('b', 150)).to.equal(true);
        expect(await s.compliance.claimLease('a', 10_000)).to.equal(false);
        await sleep(300);
        expect(await s.compliance.claimLease('a', 10_000)).to.equal(true);
      });

      it('runs: a fixed range over what was committed; finishing deletes exactly that range and keeps the present list', async function () {
        expect(await s.compliance.openRun('n1')).to.equal(null);
        expect(await s.compliance.lastRunAt()).to.equal(null);
        await s.compliance.append([event('join', ''), event('chat', 'one'), event('chat', 'two')]);
        const run = (await s.compliance.openRun('n1'))!;
        const ids = (await s.compliance.read(0, Number.MAX_SAFE_INTEGER, 100)).map((r) => r.id);
        expect(run).to.deep.include({ node: 'n1', fromId: 0, toId: ids[2], finishedAt: null, events: 0, error: null });
        // Events that commit after the range was fixed wait for the next run.
        await s.compliance.append([event('chat', 'later'), event('part', '')]);
        expect((await s.compliance.unfinishedRun())?.id).to.equal(run.id);
        const present = { 'r@conference.localhost': [{ actor: 'ann@localhost', nick: 'ann' }] };
        await s.compliance.finishRun(run.id, ['/out/a.xml'], 3, present);
        expect((await s.compliance.read(0, Number.MAX_SAFE_INTEGER, 100)).map((r) => r.content)).to.deep.equal(['later', '']);
        expect(await s.compliance.count()).to.equal(2);
        expect(await s.compliance.unfinishedRun()).to.equal(null);
        const last = (await s.compliance.lastFinishedRun())!;
        expect(last).to.deep.include({ id: run.id, events: 3, files: ['/out/a.xml'], present });
        expect(last.finishedAt).to.be.instanceOf(Date);
        expect(await s.compliance.lastRunAt()).to.be.instanceOf(Date);
        // Finishing again changes nothing; the next run starts where this one ended.
        await s.compliance.finishRun(run.id, ['/out/other.xml'], 9, {});
        expect((await s.compliance.lastFinishedRun())!.files).to.deep.equal(['/out/a.xml']);
        expect(await s.compliance.count()).to.equal(2);
        const next = (await s.compliance.openRun('n2'))!;
        expect(next.fromId).to.equal(run.toId);
        expect(next.toId).to.be.greaterThan(run.toId);
        expect((await s.compliance.runs(10)).map((r) => r.id)).to.deep.equal([next.id, run.id]);
      });

      it('archive append with compliance events commits both in one statement, or neither', async function () {
        await s.archive.append([entry('s1', 'kept')], [event('chat', 'kept', { messageId: 's1' })]);
        expect((await s.archive.lastN('r@conference.localhost', 10)).map((e) => e.body)).to.deep.equal(['kept']);
        expect((await s.compliance.read(0, Number.MAX_SAFE_INTEGER, 10)).map((r) => r.messageId)).to.deep.equal(['s1']);
        // Compliance events alone (a join, a read) go through the same statement.
        await s.archive.append([], [event('join', '')]);
        expect(await s.compliance.count()).to.equal(2);
        // A compliance row the table refuses (kind is NOT NULL) takes the archive row down with it.
        const broken = { ...event('chat', 'lost', { messageId: 's2' }), kind: null } as unknown as ComplianceEvent;
        let failed: unknown;
        try {
          await s.archive.append([entry('s2', 'lost')], [broken]);
        } catch (err) {
          failed = err;
        }
        expect(failed).to.be.instanceOf(Error);
        expect((await s.archive.lastN('r@conference.localhost', 10)).map((e) => e.body)).to.deep.equal(['kept']);
        expect(await s.compliance.count()).to.equal(2);
      });
    });
  }
});
