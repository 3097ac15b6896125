// One behavioural suite per data store family, run against every backend (the session stores' is
// test/session-store-contract.test.ts). PostgreSQL suites skip with a warning when the service is
// unreachable, except in CI where they fail.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATABASE_URL, probePostgres, requireService } from './services.js';
import { openPglite } from '../storage/db-pglite.js';
import { openPostgres, PLANNED_ONCE_POOL_SIZE, POSTGRES_POOL_SIZE } from '../storage/db-postgres.js';
import { migrate, migrations } from '../storage/migrations.js';
import { ensureArchivePartitions } from '../storage/archive-partitions.js';
import { openDataStores } from '../storage/open.js';
import { createSqlStores, warmReads } from '../storage/sql-stores.js';
import type {
  ArchivedMessage,
  ArchiveEntry,
  ArchiveQuery,
  DataStores,
  Db,
  RoomRecord,
  RosterItem,
  StoredCredentials,
} from '../storage/types.js';


const rand = () => randomBytes(6).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));





// ---------------------------------------------------------------------------------------------
// Data stores

interface OpenedDb {
  db: Db;
  /** Another connection to the same database. */
  twin(): Promise<Db>;
  dispose(): Promise<void>;
}
interface DbBackend {
  name: string;
  url?: string;
  probe?: () => Promise<void>;
  /** A fresh, empty, unmigrated database. */
  open(): Promise<OpenedDb>;
}

const dbBackends: DbBackend[] = [
  {
    name: 'PGlite (memory)',
    async open() {
      const db = await openPglite(null);
      return { db, twin: async () => db, dispose: () => db.close() };
    },
  },
  {
    name: 'PostgreSQL',
    url: DATABASE_URL,
    probe: probePostgres,
    async open() {
      const schema = `perch_test_${rand()}`;
      const db = await openPostgres(DATABASE_URL, { schema });
      const twins: Db[] = [];
      return {
        db,
        async twin() {
          const t = await openPostgres(DATABASE_URL, { schema });
          twins.push(t);
          return t;
        },
        async dispose() {
          for (const t of twins) await t.close();
          await db.query(`DROP SCHEMA ${schema} CASCADE`);
          await db.close();
        },
      };
    },
  },
];

function creds(seed: number): StoredCredentials {
  const scram = (n: number) => ({
    salt: Buffer.from([seed, n, 0, 255]),
    iterations: 4096 + n,
    storedKey: randomBytes(20),
    serverKey: randomBytes(20),
  });
  return { sha1: scram(1), sha256: scram(2) };
}

function item(jid: string, extra: Partial<RosterItem> = {}): RosterItem {
  return { jid, name: null, subscription: 'none', askOut: false, approved: false, groups: [], ...extra };
}

describe('data store contract', function () {
  for (const backend of dbBackends) {
    describe(backend.name, function () {
      const opened: OpenedDb[] = [];
      let s: DataStores;

      before(async function () {
        if (backend.probe) await requireService(this, backend.name, backend.url ?? '', backend.probe);
        const o = await backend.open();
        opened.push(o);
        await migrate(o.db);
        s = createSqlStores(o.db);
      });
      after(async function () {
        for (const o of opened) await o.dispose();
      });
      beforeEach(async function () {
        if (s) await s.db.query('TRUNCATE users CASCADE');
      });

      describe('migrations', function () {
        it('applies every migration once, reporting progress, and records it', async function () {
          const o = await backend.open();
          opened.push(o);
          const progress: [number, number, string][] = [];
          expect(await migrate(o.db, (done, total, name) => progress.push([done, total, name]))).to.equal(migrations.length);
          expect(progress).to.deep.equal(migrations.map((m, i) => [i + 1, migrations.length, m.name]));
          expect(await migrate(o.db)).to.equal(0);
          const rows = await o.db.query<{ version: number; name: string; applied_at: Date }>(
            'SELECT version, name, applied_at FROM schema_migrations ORDER BY version',
          );
          expect(rows.map((r) => r.version)).to.deep.equal(migrations.map((m) => m.version));
          expect(rows[0]?.applied_at).to.be.instanceOf(Date);
        });

        it('is safe when two processes migrate at once', async function () {
          const o = await backend.open();
          opened.push(o);
          const other = await o.twin();
          const applied = await Promise.all([migrate(o.db), migrate(other)]);
          expect(applied[0] + applied[1]).to.equal(migrations.length);
          expect(await createSqlStores(other).users.count()).to.equal(0);
        });
      });

      describe('transaction', function () {
        it('commits on success and rolls back when the callback throws', async function () {
          await s.users.create('tx', creds(1));
          const r = await s.db.transaction(async (tx) => {
            await tx.query('UPDATE users SET disabled = true WHERE username = $1', ['tx']);
            return 42;
          });
          expect(r).to.equal(42);
          expect((await s.users.get('tx'))?.disabled).to.equal(true);
          let caught: unknown;
          try {
            await s.db.transaction(async (tx) => {
              await tx.query('UPDATE users SET disabled = false WHERE username = $1', ['tx']);
              throw new Error('boom');
            });
          } catch (err) {
            caught = err;
          }
          expect((caught as Error).message).to.equal('boom');
          expect((await s.users.get('tx'))?.disabled).to.equal(true);
        });

        it('keeps concurrent queries out of a running transaction', async function () {
          await s.users.create('iso', creds(1));
          let inside = false;
          const seen: boolean[] = [];
          const tx = s.db.transaction(async (t) => {
            inside = true;
            await t.query('UPDATE users SET disabled = true WHERE username = $1', ['iso']);
            await sleep(50);
            inside = false;
          });
          const reads = [1, 2, 3].map(async () => {
            const [row] = await s.db.query<{ disabled: boolean }>('SELECT disabled FROM users WHERE username = $1', ['iso']);
            seen.push(inside);
            return row?.disabled;
          });
          await tx;
          const values = await Promise.all(reads);
          // PGlite queues them behind the transaction; PostgreSQL reads the committed row meanwhile.
          if (s.db.kind === 'pglite') expect(values).to.deep.equal([true, true, true]);
          if (s.db.kind === 'pglite') expect(seen).to.deep.equal([false, false, false]);
        });
      });

      describe('connections', function () {
        // pg.Pool closes a connection idle for 10 s by default: the first read after a quiet spell then
        // waited for a new backend, whose caches start cold (bench/pg-quiet.mjs).
        it('keeps its connections open through a quiet spell', async function () {
          this.timeout(30_000);
          const backends = async (read: Db['query']) =>
            new Set((await Promise.all([1, 2, 3].map(() => read<{ p: number }>('SELECT pg_backend_pid() AS p FROM pg_sleep(0.05)')))).map((r) => r[0]!.p));
          const pooled = await backends(s.db.query.bind(s.db));
          const plannedOnce = await backends(s.db.queryPlannedOnce.bind(s.db));
          if (s.db.kind === 'postgres') expect(pooled.size + plannedOnce.size).to.equal(6);
          await sleep(s.db.kind === 'postgres' ? 11_000 : 0);
          expect(await backends(s.db.query.bind(s.db)), 'the pool').to.deep.equal(pooled);
          expect(await backends(s.db.queryPlannedOnce.bind(s.db)), 'the planned-once connections').to.deep.equal(plannedOnce);
        });

        // JIT compiled a planned-once last page of a ten-million-message room (its LIMIT a parameter, priced
        // as a tenth of the archive): 16 ms for a read of 0.06 (bench/mam-jit-ab.mjs).
        it('never has PostgreSQL compile its queries (jit off on both pools)', async function () {
          if (s.db.kind === 'pglite') return; // the embedded build has no JIT provider
          const [pooled] = await s.db.query<{ jit: string }>(`SELECT current_setting('jit') AS jit`);
          const [once] = await s.db.queryPlannedOnce<{ jit: string }>(`SELECT current_setting('jit') AS jit`);
          expect([pooled!.jit, once!.jit]).to.deep.equal(['off', 'off']);
        });

        // Parsed and planned afresh, the append carrying compliance events cost PostgreSQL 0.9 ms of CPU a
        // room message, 0.5 prepared (an INSERT after its CTEs was not recognised as a write).
        it('prepares the archive append that carries compliance events, as every INSERT', async function () {
          if (s.db.kind === 'pglite') return; // one connection, no named statements
          const room = 'prepared@conference.example.com';
          for (let i = 0; i < 3; i++) {
            await s.archive.write(
              [{ archive: room, stanzaId: `p${i}`, stamp: new Date(), fromJid: `${room}/n`, realJid: 'u@example.com', body: 'b', stanza: '<message/>' }],
              [{ kind: 'chat', stamp: new Date(), room, actor: 'u@example.com', nick: 'n', content: 'b', messageId: `p${i}`, detail: null }],
            );
          }
          // The pool hands back its most recently used connection: the one the writes ran on.
          const rows = await s.db.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements');
          expect(rows.some((r) => /^\s*WITH captured AS \(INSERT INTO compliance_events/.test(r.statement))).to.equal(true);
          // A read led by a CTE stays unprepared (a generic plan may not suit every value).
          await s.db.query('WITH x AS (SELECT 1 AS n) SELECT n FROM x');
          expect((await s.db.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements')).some((r) => r.statement.includes('WITH x AS'))).to.equal(false);
        });

        // Parsed afresh at each call, the session-start read took 3.8× the CPU it takes prepared.
        it('prepares the reads every login makes (account, session start, user data), not other reads', async function () {
          if (s.db.kind === 'pglite') return; // one connection, no named statements
          await s.users.create('prepared', creds(2));
          const preparedNow = async () => (await s.db.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements')).map((r) => r.statement);
          // Each read once on every pooled connection: the pool hands out its most recently used one.
          for (let i = 0; i < POSTGRES_POOL_SIZE; i++) {
            await s.users.get('prepared');
            await s.sessionStart.read('prepared');
            await s.userData.list('prepared', 'blocklist');
          }
          const statements = await preparedNow();
          expect(statements.some((t) => /JOIN users u ON u.username = k.username/.test(t)), 'account').to.equal(true);
          expect(statements.some((t) => /AS offline\s+FROM unnest/.test(t)), 'session start').to.equal(true);
          expect(statements.some((t) => /JOIN user_data d ON/.test(t)), 'user data').to.equal(true);
          await s.db.query('SELECT 42 AS unprepared');
          expect((await preparedNow()).some((t) => t.includes('42 AS unprepared'))).to.equal(false);
        });

        // A new backend's first read paid 5-6 ms (connect, cold catalog caches, a prepared statement
        // planned): a server warms every connection before it listens (src/server.ts).
        it('warms every connection it may hold, and keeps them', async function () {
          const pooled = new Set<number>(), plannedOnce = new Set<number>();
          const warmed = await s.db.warm(async (conn) => {
            await warmReads(conn);
            pooled.add((await conn.query<{ p: number }>('SELECT pg_backend_pid() AS p'))[0]!.p);
            plannedOnce.add((await conn.queryPlannedOnce<{ p: number }>('SELECT pg_backend_pid() AS p'))[0]!.p);
          });
          if (s.db.kind === 'pglite') {
            expect(warmed).to.equal(1);
            return;
          }
          expect(warmed).to.equal(POSTGRES_POOL_SIZE + PLANNED_ONCE_POOL_SIZE);
          expect(pooled.size, 'the pool').to.equal(POSTGRES_POOL_SIZE);
          expect(plannedOnce.size, 'the planned-once connections').to.equal(PLANNED_ONCE_POOL_SIZE);
          // Every planned-once connection holds the archive's reads prepared (the history, a last page and its count).
          const prepared: number[] = [];
          await s.db.warm(async (conn) => {
            const [r] = await conn.queryPlannedOnce<{ n: number }>(
              "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement LIKE '%FROM archive%'");
            prepared.push(r!.n);
          });
          expect(Math.min(...prepared)).to.be.at.least(3);
          // Kept: the next reads meet the same backends.
          const again = await Promise.all([1, 2, 3].map(() => s.db.query<{ p: number }>('SELECT pg_backend_pid() AS p FROM pg_sleep(0.05)')));
          for (const [r] of again) expect(pooled.has(r!.p)).to.equal(true);
        });
      });

      describe('users', function () {
        it('creates once and reads back credentials as Buffers', async function () {
          const c = creds(7);
          expect(await s.users.create('alice', c)).to.equal(true);
          expect(await s.users.create('alice', creds(8))).to.equal(false);
          const u = await s.users.get('alice');
          expect(u).to.not.equal(null);
          expect(u!.username).to.equal('alice');
          expect(u!.disabled).to.equal(false);
          expect(u!.createdAt).to.be.instanceOf(Date);
          expect(Math.abs(u!.createdAt.getTime() - Date.now())).to.be.below(60_000);
          for (const alg of ['sha1', 'sha256'] as const) {
            const got = u!.credentials[alg]!;
            const want = c[alg]!;
            expect(Buffer.isBuffer(got.salt) && Buffer.isBuffer(got.storedKey) && Buffer.isBuffer(got.serverKey)).to.equal(true);
            expect(got.salt.equals(want.salt)).to.equal(true);
            expect(got.storedKey.equals(want.storedKey)).to.equal(true);
            expect(got.serverKey.equals(want.serverKey)).to.equal(true);
            expect(got.iterations).to.equal(want.iterations);
          }
          expect(await s.users.get('nobody')).to.equal(null);
        });

        it('keeps an account without SHA-256 keys as such (imported with SCRAM-SHA-1 keys only)', async function () {
          const c = creds(9);
          expect(await s.users.create('imported', { sha1: c.sha1, sha256: null })).to.equal(true);
          const u = (await s.users.get('imported'))!;
          expect(u.credentials.sha256).to.equal(null);
          expect(u.credentials.sha1.storedKey.equals(c.sha1.storedKey)).to.equal(true);
          expect(u.credentials.sha1.iterations).to.equal(c.sha1.iterations);
          expect(await s.users.setCredentials('imported', c)).to.equal(true);
          expect((await s.users.get('imported'))!.credentials.sha256!.storedKey.equals(c.sha256!.storedKey)).to.equal(true);
        });

        it('replaces credentials and toggles disabled', async function () {
          await s.users.create('bob', creds(1));
          const c = creds(2);
          expect(await s.users.setCredentials('bob', c)).to.equal(true);
          expect((await s.users.get('bob'))!.credentials.sha256!.storedKey.equals(c.sha256!.storedKey)).to.equal(true);
          expect(await s.users.setCredentials('nobody', c)).to.equal(false);
          expect(await s.users.setDisabled('bob', true)).to.equal(true);
          expect((await s.users.get('bob'))!.disabled).to.equal(true);
          expect(await s.users.setDisabled('bob', false)).to.equal(true);
          expect((await s.users.get('bob'))!.disabled).to.equal(false);
          expect(await s.users.setDisabled('nobody', true)).to.equal(false);
        });

        it('lists sorted by username (byte order) and counts', async function () {
          expect(await s.users.list()).to.deep.equal([]);
          expect(await s.users.count()).to.equal(0);
          for (const name of ['carol', 'alice', 'Zed', 'bob']) await s.users.create(name, creds(1));
          expect(await s.users.list()).to.deep.equal(['Zed', 'alice', 'bob', 'carol']);
          expect(await s.users.count()).to.equal(4);
        });

        it('delete removes everything stored for the user', async function () {
          await s.users.create('dave', creds(1));
          await s.users.create('erin', creds(1));
          for (const u of ['dave', 'erin']) {
            await s.roster.put(u, item('x@example.com'));
            await s.roster.putPendingIn(u, 'y@example.com', '<presence type="subscribe"/>');
            await s.offline.push(u, '<message/>', 10);
            await s.userData.put(u, 'vcard', '', '<vCard/>');
          }
          expect(await s.users.delete('dave')).to.equal(true);
          expect(await s.users.delete('dave')).to.equal(false);
          expect(await s.users.get('dave')).to.equal(null);
          expect(await s.roster.get('dave')).to.deep.equal({ version: 0, items: [] });
          expect(await s.roster.listPendingIn('dave')).to.deep.equal([]);
          expect(await s.offline.count('dave')).to.equal(0);
          expect(await s.userData.list('dave', 'vcard')).to.deep.equal([]);
          const counts = await s.db.query<{ n: unknown }>(
            `SELECT (SELECT count(*) FROM roster_items WHERE username = 'dave')
                  + (SELECT count(*) FROM roster_versions WHERE username = 'dave')
                  + (SELECT count(*) FROM subscription_requests WHERE username = 'dave')
                  + (SELECT count(*) FROM offline_messages WHERE username = 'dave')
                  + (SELECT count(*) FROM user_data WHERE username = 'dave') AS n`,
          );
          expect(Number(counts[0]?.n)).to.equal(0);
          // Others untouched; a re-created user starts from scratch.
          expect((await s.roster.get('erin')).items).to.have.length(1);
          expect(await s.offline.count('erin')).to.equal(1);
          await s.users.create('dave', creds(1));
          expect(await s.roster.get('dave')).to.deep.equal({ version: 0, items: [] });
          expect(await s.users.count()).to.equal(2);
        });
      });

      describe('roster', function () {
        beforeEach(async function () {
          await s.users.create('ann', creds(1));
          await s.users.create('ben', creds(1));
        });

        it('gives concurrent changes of one roster each its own version, and none to a removal of nothing', async function () {
          const versions = await Promise.all(Array.from({ length: 8 }, (_, n) => s.roster.put('ann', item(`c${n}@example.com`))));
          expect([...versions].sort((a, b) => a - b)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8]);
          expect(await s.roster.remove('ann', 'nobody@example.com')).to.equal(null);
          expect(await s.roster.remove('ann', 'c3@example.com')).to.equal(9);
          expect((await s.roster.get('ann')).version).to.equal(9);
        });

        it('is empty with version 0 for a user without roster', async function () {
          expect(await s.roster.get('ann')).to.deep.equal({ version: 0, items: [] });
          expect(await s.roster.getItem('ann', 'x@example.com')).to.equal(null);
        });

        it('put inserts or replaces, incrementing the version each time', async function () {
          const a = item('b@example.com', { name: 'B', subscription: 'both', groups: ['Friends', 'Work "x"'], approved: true });
          expect(await s.roster.put('ann', a)).to.equal(1);
          expect(await s.roster.getItem('ann', 'b@example.com')).to.deep.equal(a);
          const a2 = item('b@example.com', { subscription: 'to', askOut: true });
          expect(await s.roster.put('ann', a2)).to.equal(2);
          expect(await s.roster.getItem('ann', 'b@example.com')).to.deep.equal(a2);
          expect(await s.roster.put('ann', item('a@example.com', { subscription: 'from' }))).to.equal(3);
          const r = await s.roster.get('ann');
          expect(r.version).to.equal(3);
          expect(r.items).to.deep.equal([item('a@example.com', { subscription: 'from' }), a2]);
          // Per-user versions.
          expect(await s.roster.put('ben', item('a@example.com'))).to.equal(1);
          expect((await s.roster.get('ann')).version).to.equal(3);
        });

        it('remove bumps the version only when an item was removed', async function () {
          await s.roster.put('ann', item('a@example.com'));
          await s.roster.put('ann', item('b@example.com'));
          expect(await s.roster.remove('ann', 'a@example.com')).to.equal(3);
          expect(await s.roster.remove('ann', 'a@example.com')).to.equal(null);
          expect(await s.roster.remove('ben', 'b@example.com')).to.equal(null);
          const r = await s.roster.get('ann');
          expect(r.version).to.equal(3);
          expect(r.items.map((i) => i.jid)).to.deep.equal(['b@example.com']);
          expect(await s.roster.getItem('ann', 'a@example.com')).to.equal(null);
        });

        it('gives concurrent puts distinct versions', async function () {
          const versions = await Promise.all([1, 2, 3, 4, 5].map((n) => s.roster.put('ann', item(`c${n}@example.com`))));
          expect([...versions].sort()).to.deep.equal([1, 2, 3, 4, 5]);
          expect((await s.roster.get('ann')).version).to.equal(5);
        });

        it('keeps pending inbound requests with their stanza', async function () {
          expect(await s.roster.listPendingIn('ann')).to.deep.equal([]);
          await s.roster.putPendingIn('ann', 'z@example.com', '<presence from="z@example.com" type="subscribe"/>');
          await s.roster.putPendingIn('ann', 'y@example.com', '<presence type="subscribe">1</presence>');
          await s.roster.putPendingIn('ann', 'y@example.com', '<presence type="subscribe">2</presence>');
          await s.roster.putPendingIn('ben', 'x@example.com', '<presence/>');
          expect(await s.roster.listPendingIn('ann')).to.deep.equal([
            { jid: 'y@example.com', stanza: '<presence type="subscribe">2</presence>' },
            { jid: 'z@example.com', stanza: '<presence from="z@example.com" type="subscribe"/>' },
          ]);
          expect(await s.roster.removePendingIn('ann', 'y@example.com')).to.equal(true);
          expect(await s.roster.removePendingIn('ann', 'y@example.com')).to.equal(false);
          expect((await s.roster.listPendingIn('ann')).map((p) => p.jid)).to.deep.equal(['z@example.com']);
          expect(await s.roster.listPendingIn('ben')).to.have.length(1);
          // Pending requests do not touch the roster version.
          expect((await s.roster.get('ann')).version).to.equal(0);
        });
      });

      describe('offline', function () {
        beforeEach(async function () {
          await s.users.create('ann', creds(1));
          await s.users.create('ben', creds(1));
        });

        it('queues up to the limit and takes everything oldest first', async function () {
          expect(await s.offline.push('ann', '<message id="1"/>', 3)).to.equal(true);
          expect(await s.offline.push('ann', '<message id="2"/>', 3)).to.equal(true);
          expect(await s.offline.push('ben', '<message id="b"/>', 3)).to.equal(true);
          expect(await s.offline.push('ann', '<message id="3"/>', 3)).to.equal(true);
          expect(await s.offline.push('ann', '<message id="4"/>', 3)).to.equal(false);
          expect(await s.offline.count('ann')).to.equal(3);
          const msgs = await s.offline.take('ann');
          expect(msgs.map((m) => m.stanza)).to.deep.equal(['<message id="1"/>', '<message id="2"/>', '<message id="3"/>']);
          expect(msgs[0]!.id).to.be.a('number');
          expect(msgs[0]!.id).to.be.below(msgs[1]!.id);
          expect(msgs[1]!.id).to.be.below(msgs[2]!.id);
          for (const m of msgs) expect(m.stamp).to.be.instanceOf(Date);
          expect(await s.offline.take('ann')).to.deep.equal([]);
          expect(await s.offline.count('ann')).to.equal(0);
          expect(await s.offline.count('ben')).to.equal(1);
          expect(await s.offline.push('ann', '<message id="5"/>', 3)).to.equal(true);
        });

        it('refuses with limit 0 and for unknown users', async function () {
          expect(await s.offline.push('ann', '<message/>', 0)).to.equal(false);
          expect(await s.offline.push('nobody', '<message/>', 10)).to.equal(false);
          expect(await s.offline.count('nobody')).to.equal(0);
        });

        it('never exceeds the limit under concurrent pushes', async function () {
          const ok = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((n) => s.offline.push('ann', `<m n="${n}"/>`, 3)));
          expect(ok.filter(Boolean)).to.have.length(3);
          expect(await s.offline.count('ann')).to.equal(3);
        });
      });

      describe('userData', function () {
        beforeEach(async function () {
          await s.users.create('ann', creds(1));
          await s.users.create('ben', creds(1));
        });

        it('gets, puts, replaces and deletes by kind and key', async function () {
          expect(await s.userData.get('ann', 'private', 'ns:a')).to.equal(null);
          await s.userData.put('ann', 'private', 'ns:a', '<a/>');
          expect(await s.userData.get('ann', 'private', 'ns:a')).to.equal('<a/>');
          await s.userData.put('ann', 'private', 'ns:a', '<a>2</a>');
          expect(await s.userData.get('ann', 'private', 'ns:a')).to.equal('<a>2</a>');
          expect(await s.userData.get('ann', 'vcard', 'ns:a')).to.equal(null);
          expect(await s.userData.get('ben', 'private', 'ns:a')).to.equal(null);
          expect(await s.userData.delete('ann', 'private', 'ns:a')).to.equal(true);
          expect(await s.userData.delete('ann', 'private', 'ns:a')).to.equal(false);
          expect(await s.userData.get('ann', 'private', 'ns:a')).to.equal(null);
        });

        it('lists one kind sorted by key and clears it', async function () {
          await s.userData.put('ann', 'blocklist', 'c@example.com', '');
          await s.userData.put('ann', 'blocklist', 'a@example.com', '');
          await s.userData.put('ann', 'blocklist', 'B@example.com', 'x');
          await s.userData.put('ann', 'prefs', 'a@example.com', 'keep');
          await s.userData.put('ben', 'blocklist', 'z@example.com', '');
          expect(await s.userData.list('ann', 'blocklist')).to.deep.equal([
            { key: 'B@example.com', value: 'x' },
            { key: 'a@example.com', value: '' },
            { key: 'c@example.com', value: '' },
          ]);
          expect(await s.userData.clear('ann', 'blocklist')).to.equal(3);
          expect(await s.userData.clear('ann', 'blocklist')).to.equal(0);
          expect(await s.userData.list('ann', 'blocklist')).to.deep.equal([]);
          expect(await s.userData.list('ann', 'prefs')).to.deep.equal([{ key: 'a@example.com', value: 'keep' }]);
          expect(await s.userData.list('ben', 'blocklist')).to.have.length(1);
        });
      });

      describe('rooms', function () {
        beforeEach(async function () {
          await s.db.query('TRUNCATE rooms');
        });

        const room = (name: string, extra: Partial<RoomRecord> = {}): RoomRecord => ({
          service: 'conference.example.com',
          name,
          config: {},
          affiliations: {},
          subject: null,
          createdAt: new Date('2026-01-02T03:04:05.678Z'),
          persistent: true,
          ...extra,
        });

        it('puts, gets, replaces and deletes a room', async function () {
          expect(await s.rooms.get('conference.example.com', 'lobby')).to.equal(null);
          const r = room('lobby', {
            config: { title: 'Lobby "1"', public: true, maxUsers: 30, owners: ['a@example.com'], nested: { x: null } },
            affiliations: { 'a@example.com': 'owner', 'b@example.com': 'outcast' },
            subject: { text: 'Welcome', nick: 'alice', stamp: new Date('2026-02-03T04:05:06.789Z') },
          });
          await s.rooms.put(r);
          expect(await s.rooms.get('conference.example.com', 'lobby')).to.deep.equal(r);
          expect(await s.rooms.get('other.example.com', 'lobby')).to.equal(null);
          const r2 = room('lobby', { config: { title: 'New' }, persistent: false });
          await s.rooms.put(r2);
          expect(await s.rooms.get('conference.example.com', 'lobby')).to.deep.equal(r2);
          expect(await s.rooms.count('conference.example.com')).to.equal(1);
          expect(await s.rooms.delete('conference.example.com', 'lobby')).to.equal(true);
          expect(await s.rooms.delete('conference.example.com', 'lobby')).to.equal(false);
          expect(await s.rooms.get('conference.example.com', 'lobby')).to.equal(null);
        });

        it('lists one service by name in byte order, pages by name, filters public rooms and counts', async function () {
          const names = ['delta', 'Alpha', 'bravo', 'charlie', 'echo', 'b'];
          for (const [n, name] of names.entries()) await s.rooms.put(room(name, { config: { public: n % 2 === 0 } }));
          await s.rooms.put(room('zulu', { service: 'other.example.com' }));
          const list = async (opts: { publicOnly?: boolean; after?: string; limit: number }) =>
            (await s.rooms.list('conference.example.com', opts)).map((r) => r.name);
          expect(await list({ limit: 100 })).to.deep.equal(['Alpha', 'b', 'bravo', 'charlie', 'delta', 'echo']);
          expect(await list({ limit: 2 })).to.deep.equal(['Alpha', 'b']);
          expect(await list({ after: 'b', limit: 2 })).to.deep.equal(['bravo', 'charlie']);
          expect(await list({ after: 'charlie', limit: 2 })).to.deep.equal(['delta', 'echo']);
          expect(await list({ after: 'echo', limit: 2 })).to.deep.equal([]);
          expect(await list({ publicOnly: true, limit: 100 })).to.deep.equal(['bravo', 'delta', 'echo']);
          expect(await list({ publicOnly: true, after: 'bravo', limit: 1 })).to.deep.equal(['delta']);
          expect((await s.rooms.list('conference.example.com', { limit: 1 }))[0]).to.deep.equal(
            room('Alpha', { config: { public: false } }),
          );
          expect(await s.rooms.count('conference.example.com')).to.equal(6);
          expect(await s.rooms.count('other.example.com')).to.equal(1);
          expect(await s.rooms.count('none.example.com')).to.equal(0);
        });

        it('sets, replaces and removes one affiliation', async function () {
          await s.rooms.put(room('r', { affiliations: { 'a@example.com': 'owner' } }));
          expect(await s.rooms.setAffiliation('conference.example.com', 'r', 'b@example.com', 'member')).to.equal(true);
          expect(await s.rooms.setAffiliation('conference.example.com', 'r', 'c@example.com', 'outcast')).to.equal(true);
          expect(await s.rooms.setAffiliation('conference.example.com', 'r', 'b@example.com', 'admin')).to.equal(true);
          expect((await s.rooms.get('conference.example.com', 'r'))!.affiliations).to.deep.equal({
            'a@example.com': 'owner',
            'b@example.com': 'admin',
            'c@example.com': 'outcast',
          });
          expect(await s.rooms.setAffiliation('conference.example.com', 'r', 'a@example.com', 'none')).to.equal(true);
          expect(await s.rooms.setAffiliation('conference.example.com', 'r', 'x@example.com', 'none')).to.equal(true);
          expect((await s.rooms.get('conference.example.com', 'r'))!.affiliations).to.deep.equal({
            'b@example.com': 'admin',
            'c@example.com': 'outcast',
          });
          expect(await s.rooms.setAffiliation('conference.example.com', 'missing', 'a@example.com', 'owner')).to.equal(false);
          expect(await s.rooms.get('conference.example.com', 'missing')).to.equal(null);
        });
      });

      describe('archive', function () {
        const ROOM = 'room@conference.example.com';
        const T0 = Date.parse('2026-01-01T00:00:00.000Z');
        const minute = (n: number) => new Date(T0 + n * 60_000);
        const entry = (n: number, extra: Partial<ArchiveEntry> = {}): ArchiveEntry => ({
          archive: ROOM,
          stanzaId: `id-${String(n).padStart(4, '0')}`,
          stamp: minute(n),
          fromJid: `${ROOM}/nick${n % 3}`,
          realJid: `user${n % 3}@example.com`,
          body: `message ${n}`,
          stanza: `<message type="groupchat" n="${n}"><body>message ${n}</body></message>`,
          ...extra,
        });
        const sids = (r: { entries: ArchivedMessage[] }) => r.entries.map((e) => e.stanzaId);
        const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => entry(from + i).stanzaId);

        beforeEach(async function () {
          await s.db.query('TRUNCATE archive');
        });

        it('plans once the reads in id order alone (last page, pages by id cursors, lastN, get); filtered ones at each call', async function () {
          const once: string[] = [];
          const counted: Db = { ...s.db, queryPlannedOnce: (sql, params) => (once.push(sql), s.db.queryPlannedOnce(sql, params)) };
          const a = createSqlStores(counted).archive;
          await a.append(Array.from({ length: 30 }, (_, n) => entry(n)));
          const reads: [string, () => Promise<unknown>, number][] = [
            ['last page', () => a.query(ROOM, { limit: 5, before: true }), 2],
            ['page after a cursor', () => a.query(ROOM, { limit: 5, after: entry(10).stanzaId }), 3],
            ['page after an id', () => a.query(ROOM, { limit: 5, afterId: entry(3).stanzaId }), 3],
            ['lastN', () => a.lastN(ROOM, 5), 1],
            ['get', () => a.get(ROOM, entry(4).stanzaId), 1],
            ['with', () => a.query(ROOM, { limit: 5, with: { realJid: 'user1@example.com' } }), 0],
            ['a window', () => a.query(ROOM, { limit: 5, start: minute(3) }), 0],
            ['lastN since', () => a.lastN(ROOM, 5, { since: minute(20) }), 0],
            ['full text', () => a.query(ROOM, { limit: 5, fulltext: 'message' }), 0],
          ];
          for (const [what, read, planned] of reads) {
            once.length = 0;
            await read();
            expect(once.length, what).to.equal(planned);
          }
          // The answers are those of the same reads planned at each call.
          const plain = createSqlStores({ ...s.db, queryPlannedOnce: (sql, params) => s.db.query(sql, params) }).archive;
          for (const q of [{ limit: 5, before: true as const }, { limit: 4, after: entry(10).stanzaId }, { limit: 4, before: entry(20).stanzaId }]) {
            expect(await a.query(ROOM, q), JSON.stringify(q)).to.deep.equal(await plain.query(ROOM, q));
          }
          expect(sids({ entries: await a.lastN(ROOM, 3) })).to.deep.equal(range(27, 30));
          // On PostgreSQL, on connections that keep a statement's generic plan from its first call.
          const [mode] = await s.db.queryPlannedOnce<{ m: string }>(`SELECT current_setting('plan_cache_mode') AS m`);
          expect(mode!.m).to.equal(s.db.kind === 'postgres' ? 'force_generic_plan' : 'auto');
        });

        it('finds the entries after a message that name it (mentioning), oldest first, retracted ones left out', async function () {
          const target = entry(1);
          const batch = [
            entry(0, { stanza: `<message><reactions id='${target.stanzaId}'/></message>`, body: null }),
            target,
            entry(2, { stanza: `<message><reactions id='${target.stanzaId}'/></message>`, body: null }),
            entry(3, { stanza: `<message id='50%_x'><body>other</body></message>` }),
            entry(4, { stanza: `<message><replace id='c-1'/><body>fixed</body></message>` }),
            entry(5, { stanza: `<message><reactions id='${target.stanzaId}'/></message>`, body: null }),
            { ...entry(6, { stanza: `<message><reactions id='${target.stanzaId}'/></message>`, body: null }), archive: 'other@conference.example.com' },
          ];
          await s.archive.append(batch);
          await s.archive.retract(ROOM, entry(5).stanzaId, '<message/>');
          const found = await s.archive.mentioning(ROOM, target.stanzaId, [`id='${target.stanzaId}'`, "id='c-1'"], 10);
          expect(found.map((e) => e.stanzaId)).to.deep.equal([entry(2).stanzaId, entry(4).stanzaId]);
          expect((await s.archive.mentioning(ROOM, target.stanzaId, [`id='${target.stanzaId}'`], 1)).length).to.equal(1);
          // LIKE's wildcards in a text are taken literally.
          expect((await s.archive.mentioning(ROOM, target.stanzaId, ["id='5__%'"], 10)).length).to.equal(0);
          expect((await s.archive.mentioning(ROOM, target.stanzaId, ["id='50%_x'"], 10)).map((e) => e.stanzaId)).to.deep.equal([entry(3).stanzaId]);
          expect(await s.archive.mentioning(ROOM, 'missing', [`id='${target.stanzaId}'`], 10)).to.deep.equal([]);
          expect(await s.archive.mentioning(ROOM, target.stanzaId, [], 10)).to.deep.equal([]);
        });

        it('appends a batch in order and gets entries back by stanza id', async function () {
          const batch = [0, 1, 2].map((n) => entry(n, n === 1 ? { realJid: null, body: null } : {}));
          const ids = await s.archive.append(batch);
          expect(ids.map((r) => r.stanzaId)).to.deep.equal(batch.map((e) => e.stanzaId));
          expect(ids[0]!.id).to.be.below(ids[1]!.id);
          expect(ids[1]!.id).to.be.below(ids[2]!.id);
          expect(await s.archive.append([])).to.deep.equal([]);
          for (const [n, e] of batch.entries()) {
            expect(await s.archive.get(ROOM, e.stanzaId)).to.deep.equal({ ...e, id: ids[n]!.id, retracted: false });
          }
          expect(await s.archive.get(ROOM, 'missing')).to.equal(null);
          expect(await s.archive.get('other@conference.example.com', batch[0]!.stanzaId)).to.equal(null);
          // Stanza ids are unique per archive only.
          let caught: unknown;
          try {
            await s.archive.append([entry(9), entry(0)]);
          } catch (err) {
            caught = err;
          }
          expect(caught).to.be.instanceOf(Error);
          expect(await s.archive.get(ROOM, entry(9).stanzaId)).to.equal(null);
          await s.archive.append([entry(0, { archive: 'other@conference.example.com' })]);
          expect((await s.archive.get('other@conference.example.com', entry(0).stanzaId))?.body).to.equal('message 0');
        });

        it('appends 1,000 rows in one call', async function () {
          const batch = Array.from({ length: 1000 }, (_, n) => entry(n));
          const ids = await s.archive.append(batch);
          expect(ids).to.have.length(1000);
          expect(ids.map((r) => r.stanzaId)).to.deep.equal(batch.map((e) => e.stanzaId));
          for (let n = 1; n < ids.length; n++) expect(ids[n]!.id).to.be.above(ids[n - 1]!.id);
          const all = await s.archive.query(ROOM, { limit: 0 });
          expect(all).to.deep.equal({ entries: [], complete: false, count: 1000 });
          const last = await s.archive.query(ROOM, { before: true, limit: 3 });
          expect(sids(last)).to.deep.equal(range(997, 1000));
          expect(last.entries[2]!.id).to.equal(ids[999]!.id);
          expect(last.firstIndex).to.equal(997);
        });

        it('writes a one-to-one batch whose copies share a stanza: each row keeps its own fields, in order', async function () {
          const OTHER = 'bob@example.com';
          const shared = '<message type="chat"><body>same</body></message>';
          // Copies of one message (same stanza and body), a stanza repeated with another body, and a
          // stanza repeated after another one: only neighbours with both equal share a payload.
          const batch = [
            entry(0, { stanza: shared, body: 'same' }),
            entry(0, { archive: OTHER, stanza: shared, body: 'same', fromJid: 'alice@example.com/a', realJid: 'alice@example.com' }),
            entry(1, { stanza: shared, body: 'other body' }),
            entry(2),
            entry(3, { stanza: shared, body: 'same', realJid: null }),
          ];
          await s.archive.write(batch);
          for (const e of batch) expect(await s.archive.get(e.archive, e.stanzaId)).to.deep.include({ ...e, retracted: false });
          const mine = await s.archive.query(ROOM, { limit: 10 });
          expect(sids(mine)).to.deep.equal([0, 1, 2, 3].map((n) => entry(n).stanzaId));
          for (let n = 1; n < mine.entries.length; n++) expect(mine.entries[n]!.id).to.be.above(mine.entries[n - 1]!.id);
          // Each copy counts in its own archive and is found by its own full text.
          expect((await s.archive.query(OTHER, { limit: 0 })).count).to.equal(1);
          expect(sids(await s.archive.query(ROOM, { fulltext: 'other', limit: 10 }))).to.deep.equal([entry(1).stanzaId]);
          expect((await s.archive.sizes([ROOM, OTHER])).get(OTHER)).to.deep.equal({ messages: 1, bytes: shared.length });
        });

        it('writes batches of every size either side of the small-batch shape alike: fields, ids in order, words, counts', async function () {
          // Up to six rows a batch is a VALUES list naming its bodies by number; above, unnested columns.
          const OTHER = 'bob@example.com';
          let n = 0;
          const written: ArchiveEntry[] = [];
          for (let size = 1; size <= 9; size++) {
            const batch: ArchiveEntry[] = [];
            while (batch.length < size) {
              const m = n++;
              const e = entry(m, { body: `word${m} shared${size}`, stanza: `<message id='s${m}'><body>word${m}</body></message>` });
              batch.push(e);
              // A one-to-one message's second copy: the same stanza and body, the partner's archive.
              if (m % 3 === 0 && batch.length < size) batch.push({ ...e, archive: OTHER, fromJid: 'alice@example.com/a', realJid: 'alice@example.com' });
            }
            const ids = size % 2 ? await s.archive.append(batch) : (await s.archive.write(batch), null);
            if (ids) {
              expect(ids.map((r) => r.stanzaId), `size ${size}`).to.deep.equal(batch.map((e) => e.stanzaId));
              for (let i = 1; i < ids.length; i++) expect(ids[i]!.id, `size ${size}`).to.be.above(ids[i - 1]!.id);
            }
            written.push(...batch);
          }
          for (const e of written) expect(await s.archive.get(e.archive, e.stanzaId)).to.deep.include({ ...e, retracted: false });
          const mine = written.filter((e) => e.archive === ROOM);
          const page = await s.archive.query(ROOM, { limit: 100 });
          expect(sids(page)).to.deep.equal(mine.map((e) => e.stanzaId));
          for (let i = 1; i < page.entries.length; i++) expect(page.entries[i]!.id).to.be.above(page.entries[i - 1]!.id);
          expect(page.count).to.equal(mine.length);
          expect((await s.archive.query(OTHER, { limit: 0 })).count).to.equal(written.length - mine.length);
          // Each row's words are its own body's, in either shape.
          for (const m of [0, 7, 20, n - 1]) {
            const e = written.find((w) => w.stanzaId === entry(m).stanzaId && w.archive === ROOM)!;
            expect(sids(await s.archive.query(ROOM, { fulltext: `word${m}`, limit: 10 })), `word${m}`).to.deep.equal([e.stanzaId]);
          }
          expect((await s.archive.query(ROOM, { fulltext: 'shared5', limit: 10 })).entries.length).to.equal(mine.filter((e) => e.body!.endsWith('shared5')).length);
        });

        it('keeps empty and null values as they are, and a value holding a column separator (U+0001, U+0002)', async function () {
          // The append packs each column into one text (packColumns); a value holding its separators
          // goes as arrays instead. Neither may shift a value into another row or turn '' into null.
          // Four rows go as a VALUES list (a small batch), twelve as packed columns.
          for (const size of [4, 12]) for (const [k, odd] of [null, '\u0001', '\u0002', 'a\u0001b', 'a\u0002b', '\u0002\u0002'].entries()) {
            const batch = [
              entry(0, { body: '', realJid: null }),
              entry(1, { body: null, stanza: '<message type="groupchat"/>' }),
              entry(2, { body: odd ?? 'plain words' }),
              entry(3, { body: '' }),
              ...Array.from({ length: size - 4 }, (_, n) => entry(4 + n, { body: n % 2 ? odd : null, realJid: odd })),
            ].map((e) => ({ ...e, stanzaId: `${e.stanzaId}-${size}-${k}` }));
            await s.archive.write(batch);
            for (const e of batch) expect(await s.archive.get(e.archive, e.stanzaId), `${size} ${JSON.stringify(odd)}`).to.deep.include({ ...e, retracted: false });
          }
          const single = [entry(9, { body: '' })];
          await s.archive.write(single);
          expect(await s.archive.get(ROOM, single[0]!.stanzaId)).to.deep.include({ ...single[0]!, retracted: false });
        });

        it('counts a large archive exactly from its kept size, and leaves out counts of large filtered sets', async function () {
          this.timeout(60000);
          await s.archive.append(Array.from({ length: 10_050 }, (_, n) => entry(n)));
          await s.archive.append([entry(1, { archive: 'other@conference.example.com' })]);
          const last = await s.archive.query(ROOM, { before: true, limit: 50 });
          expect([last.count, last.firstIndex, last.complete]).to.deep.equal([10_050, 10_000, false]);
          // Every entry matches this filter, so the set is too large to count cheaply: no count, no index.
          const filtered = await s.archive.query(ROOM, { start: minute(0), before: true, limit: 50 });
          expect(filtered.entries).to.have.length(50);
          expect([filtered.count, filtered.firstIndex]).to.deep.equal([undefined, undefined]);
          // Near the start of the set the index is still known.
          const head = await s.archive.query(ROOM, { start: minute(0), limit: 5 });
          expect([head.count, head.firstIndex]).to.deep.equal([undefined, 0]);
          const small = await s.archive.query(ROOM, { ids: [entry(3).stanzaId, entry(4).stanzaId], limit: 10 });
          expect(small.count).to.equal(2);
          expect(await s.archive.removeArchive(ROOM)).to.equal(10_050);
          expect((await s.archive.query(ROOM, { limit: 0 })).count).to.equal(0);
          expect((await s.archive.query('other@conference.example.com', { limit: 0 })).count).to.equal(1);
        });

        it('pages forwards and backwards across page boundaries', async function () {
          await s.archive.append(Array.from({ length: 25 }, (_, n) => entry(n)));
          await s.archive.append([entry(3, { archive: 'other@conference.example.com' })]);

          const p1 = await s.archive.query(ROOM, { limit: 10 });
          expect(sids(p1)).to.deep.equal(range(0, 10));
          expect([p1.complete, p1.count, p1.firstIndex]).to.deep.equal([false, 25, 0]);
          const p2 = await s.archive.query(ROOM, { after: p1.entries[9]!.stanzaId, limit: 10 });
          expect(sids(p2)).to.deep.equal(range(10, 20));
          expect([p2.complete, p2.count, p2.firstIndex]).to.deep.equal([false, 25, 10]);
          const p3 = await s.archive.query(ROOM, { after: p2.entries[9]!.stanzaId, limit: 10 });
          expect(sids(p3)).to.deep.equal(range(20, 25));
          expect([p3.complete, p3.count, p3.firstIndex]).to.deep.equal([true, 25, 20]);
          const exact = await s.archive.query(ROOM, { after: entry(14).stanzaId, limit: 10 });
          expect(sids(exact)).to.deep.equal(range(15, 25));
          expect(exact.complete).to.equal(true);
          const past = await s.archive.query(ROOM, { after: entry(24).stanzaId, limit: 10 });
          expect(past).to.deep.equal({ entries: [], complete: true, count: 25 });

          const b1 = await s.archive.query(ROOM, { before: true, limit: 10 });
          expect(sids(b1)).to.deep.equal(range(15, 25));
          expect([b1.complete, b1.count, b1.firstIndex]).to.deep.equal([false, 25, 15]);
          const b2 = await s.archive.query(ROOM, { before: b1.entries[0]!.stanzaId, limit: 10 });
          expect(sids(b2)).to.deep.equal(range(5, 15));
          expect([b2.complete, b2.firstIndex]).to.deep.equal([false, 5]);
          const b3 = await s.archive.query(ROOM, { before: b2.entries[0]!.stanzaId, limit: 10 });
          expect(sids(b3)).to.deep.equal(range(0, 5));
          expect([b3.complete, b3.firstIndex]).to.deep.equal([true, 0]);
          const b4 = await s.archive.query(ROOM, { before: entry(10).stanzaId, limit: 10 });
          expect(sids(b4)).to.deep.equal(range(0, 10));
          expect(b4.complete).to.equal(true);

          const between = await s.archive.query(ROOM, { after: entry(4).stanzaId, before: entry(8).stanzaId, limit: 10 });
          expect(sids(between)).to.deep.equal(range(5, 8));
          const indexed = await s.archive.query(ROOM, { index: 20, limit: 3 });
          expect(sids(indexed)).to.deep.equal(range(20, 23));
          expect([indexed.complete, indexed.firstIndex]).to.deep.equal([false, 20]);
          const countOnly = await s.archive.query(ROOM, { limit: 0 });
          expect(countOnly).to.deep.equal({ entries: [], complete: false, count: 25 });

          for (const q of [{ after: 'missing' }, { before: 'missing' }, { afterId: 'missing' }, { beforeId: 'missing' }]) {
            expect(await s.archive.query(ROOM, { ...q, limit: 10 })).to.deep.equal({
              entries: [],
              complete: true,
              count: 0,
              notFound: true,
            });
          }
          // An id of another archive is unknown here.
          const other = await s.archive.query('other@conference.example.com', { after: entry(4).stanzaId, limit: 10 });
          expect(other.notFound).to.equal(true);
          const empty = await s.archive.query('empty@conference.example.com', { before: true, limit: 10 });
          expect(empty).to.deep.equal({ entries: [], complete: true, count: 0 });
        });

        it('filters by occupant, real JID, time window, id range and ids', async function () {
          await s.archive.append(Array.from({ length: 30 }, (_, n) => entry(n)));
          const nick1 = Array.from({ length: 10 }, (_, i) => entry(3 * i + 1).stanzaId);

          const byOccupant = await s.archive.query(ROOM, { with: { occupant: `${ROOM}/nick1` }, limit: 4 });
          expect(sids(byOccupant)).to.deep.equal(nick1.slice(0, 4));
          expect([byOccupant.count, byOccupant.complete]).to.deep.equal([10, false]);
          const next = await s.archive.query(ROOM, { with: { occupant: `${ROOM}/nick1` }, after: nick1[3], limit: 4 });
          expect(sids(next)).to.deep.equal(nick1.slice(4, 8));
          expect(next.firstIndex).to.equal(4);
          const lastOfOccupant = await s.archive.query(ROOM, { with: { occupant: `${ROOM}/nick1` }, before: true, limit: 4 });
          expect(sids(lastOfOccupant)).to.deep.equal(nick1.slice(6, 10));
          expect(lastOfOccupant.firstIndex).to.equal(6);

          const byRealJid = await s.archive.query(ROOM, { with: { realJid: 'user2@example.com' }, limit: 100 });
          expect(sids(byRealJid)).to.deep.equal(Array.from({ length: 10 }, (_, i) => entry(3 * i + 2).stanzaId));
          expect(byRealJid.complete).to.equal(true);
          const both = await s.archive.query(ROOM, { with: { occupant: `${ROOM}/nick1`, realJid: 'user2@example.com' }, limit: 100 });
          expect(both).to.deep.equal({ entries: [], complete: true, count: 0 });
          const nobody = await s.archive.query(ROOM, { with: { realJid: 'nobody@example.com' }, limit: 10 });
          expect(nobody.count).to.equal(0);

          // Both ends of the window are inclusive.
          const window = await s.archive.query(ROOM, { start: minute(10), end: minute(19), limit: 4 });
          expect(sids(window)).to.deep.equal(range(10, 14));
          expect([window.count, window.complete, window.firstIndex]).to.deep.equal([10, false, 0]);
          const windowLast = await s.archive.query(ROOM, { start: minute(10), end: minute(19), before: true, limit: 4 });
          expect(sids(windowLast)).to.deep.equal(range(16, 20));
          expect(windowLast.firstIndex).to.equal(6);
          const since = await s.archive.query(ROOM, { start: new Date(T0 + 25 * 60_000 - 1), limit: 100 });
          expect(sids(since)).to.deep.equal(range(25, 30));
          const until = await s.archive.query(ROOM, { end: new Date(T0 + 60_000 + 1), limit: 100 });
          expect(sids(until)).to.deep.equal(range(0, 2));
          const windowed = await s.archive.query(ROOM, {
            start: minute(10),
            end: minute(19),
            with: { realJid: 'user1@example.com' },
            limit: 100,
          });
          expect(sids(windowed)).to.deep.equal([10, 13, 16, 19].map((n) => entry(n).stanzaId));

          const ranged = await s.archive.query(ROOM, { afterId: entry(5).stanzaId, beforeId: entry(12).stanzaId, limit: 3 });
          expect(sids(ranged)).to.deep.equal(range(6, 9));
          expect([ranged.count, ranged.complete, ranged.firstIndex]).to.deep.equal([6, false, 0]);
          const rangedLast = await s.archive.query(ROOM, { afterId: entry(5).stanzaId, before: true, limit: 3 });
          expect(sids(rangedLast)).to.deep.equal(range(27, 30));
          expect([rangedLast.count, rangedLast.firstIndex]).to.deep.equal([24, 21]);

          const picked = [entry(7).stanzaId, entry(2).stanzaId, 'missing', entry(20).stanzaId];
          const byIds = await s.archive.query(ROOM, { ids: picked, limit: 10 });
          expect(sids(byIds)).to.deep.equal([2, 7, 20].map((n) => entry(n).stanzaId));
          expect([byIds.count, byIds.complete]).to.deep.equal([3, true]);
        });

        it('searches bodies by words in any case, newest first, and retraction removes an entry', async function () {
          const bodies = ['Hello World', 'hello there', 'nothing here', 'HELLO again, world!', 'goodbye', 'Hello, hello', null];
          const ids = await s.archive.append(bodies.map((body, n) => entry(n, { body })));
          const search = (fulltext: string, extra: Partial<ArchiveQuery> = {}) =>
            s.archive.query(ROOM, { fulltext, limit: 10, ...extra });

          const hello = await search('hello');
          expect(sids(hello)).to.deep.equal([5, 3, 1, 0].map((n) => entry(n).stanzaId));
          expect([hello.count, hello.complete, hello.firstIndex]).to.deep.equal([4, true, 0]);
          expect(sids(await search('WORLD hello'))).to.deep.equal([3, 0].map((n) => entry(n).stanzaId));
          expect(sids(await search('World'))).to.deep.equal([3, 0].map((n) => entry(n).stanzaId));
          expect((await search('hell')).count).to.equal(0);
          expect((await search('')).count).to.equal(0);
          expect(sids(await search('hello', { with: { occupant: `${ROOM}/nick0` } }))).to.deep.equal([entry(3).stanzaId, entry(0).stanzaId]);
          expect(sids(await search('hello', { end: minute(2) }))).to.deep.equal([1, 0].map((n) => entry(n).stanzaId));

          // Pages follow the newest-first order.
          const f1 = await search('hello', { limit: 3 });
          expect(sids(f1)).to.deep.equal([5, 3, 1].map((n) => entry(n).stanzaId));
          expect([f1.complete, f1.firstIndex]).to.deep.equal([false, 0]);
          const f2 = await search('hello', { after: f1.entries[2]!.stanzaId, limit: 3 });
          expect(sids(f2)).to.deep.equal([entry(0).stanzaId]);
          expect([f2.complete, f2.count, f2.firstIndex]).to.deep.equal([true, 4, 3]);
          const fLast = await search('hello', { before: true, limit: 3 });
          expect(sids(fLast)).to.deep.equal([3, 1, 0].map((n) => entry(n).stanzaId));
          expect([fLast.complete, fLast.firstIndex]).to.deep.equal([false, 1]);
          const fPrev = await search('hello', { before: entry(3).stanzaId, limit: 3 });
          expect(sids(fPrev)).to.deep.equal([entry(5).stanzaId]);
          expect([fPrev.complete, fPrev.firstIndex]).to.deep.equal([true, 0]);

          const tombstone = '<message type="groupchat"><retracted xmlns="urn:xmpp:message-retract:1"/></message>';
          expect(await s.archive.retract(ROOM, entry(3).stanzaId, tombstone)).to.equal(true);
          expect(await s.archive.retract(ROOM, 'missing', tombstone)).to.equal(false);
          expect(await s.archive.retract('other@conference.example.com', entry(1).stanzaId, tombstone)).to.equal(false);
          expect(sids(await search('hello'))).to.deep.equal([5, 1, 0].map((n) => entry(n).stanzaId));
          expect(sids(await search('again'))).to.deep.equal([]);
          expect(await s.archive.get(ROOM, entry(3).stanzaId)).to.deep.equal({
            ...entry(3),
            body: null,
            stanza: tombstone,
            retracted: true,
            id: ids[3]!.id,
          });
          // The tombstone keeps its place in the archive.
          const all = await s.archive.query(ROOM, { limit: 100 });
          expect(all.count).to.equal(7);
          expect(all.entries[3]!.retracted).to.equal(true);
          expect(all.entries.filter((e) => e.retracted)).to.have.length(1);
        });

        it('matches all, any or the exact text, in any case or this case, and by authors', async function () {
          const bodies = ['Release Plan for Q3', 'the release is late', 'plan B', 'Plan the RELEASE party', 'release-plan draft', null, 'c++ build'];
          await s.archive.append(bodies.map((body, n) => entry(n, { body, realJid: n % 2 ? 'bob@example.com' : 'alice@example.com' })));
          const match = (text: string, mode: 'all' | 'any' | 'exact', caseSensitive = false, extra: Partial<ArchiveQuery> = {}) =>
            s.archive.query(ROOM, { match: { text, mode, caseSensitive }, limit: 10, ...extra }).then(sids);
          const ids = (...n: number[]) => n.map((i) => entry(i).stanzaId);
          expect(await match('release plan', 'all')).to.deep.equal(ids(4, 3, 0));
          expect(await match('release plan', 'any')).to.deep.equal(ids(4, 3, 2, 1, 0));
          expect(await match('release plan', 'exact')).to.deep.equal(ids(0));
          expect(await match('Release Plan', 'exact', true)).to.deep.equal(ids(0));
          expect(await match('release plan', 'exact', true)).to.deep.equal([]);
          expect(await match('RELEASE', 'all', true)).to.deep.equal(ids(3));
          expect(await match('Plan release', 'any', true)).to.deep.equal(ids(4, 3, 1, 0));
          expect(await match('c++', 'all')).to.deep.equal(ids(6));
          expect(await match('  ', 'any')).to.deep.equal([]);
          expect(await match('release', 'all', false, { authors: { realJids: ['bob@example.com'] } })).to.deep.equal(ids(3, 1));
          expect(await match('release', 'any', false, { authors: { occupants: [`${ROOM}/nick0`], realJids: ['bob@example.com'] } })).to.deep.equal(ids(3, 1, 0));
          expect(sids(await s.archive.query(ROOM, { authors: { realJids: [] }, limit: 10 }))).to.deep.equal([]);
          // A search in a date window stays newest first.
          expect(await match('release', 'any', false, { start: minute(2), end: minute(4) })).to.deep.equal(ids(4, 3));
          // Authors alone make a search too: newest first.
          expect(sids(await s.archive.query(ROOM, { authors: { realJids: ['bob@example.com'] }, limit: 10 }))).to.deep.equal(ids(5, 3, 1));
        });

        it('pages and searches across quarters whose ids overlap (imports, a default partition) the same as in id order, count bound kept', async function () {
          this.timeout(60000);
          await ensureArchivePartitions(s.db, { from: new Date('2025-07-01T00:00:00Z') });
          const OTHER = 'other@conference.example.com';
          const at = (iso: string, n: number) => new Date(Date.parse(iso) + n * 60_000);
          const rows = (from: number, n: number, iso: string, archive = ROOM) =>
            Array.from({ length: n }, (_, i) => entry(from + i, { archive, stamp: at(iso, i), body: `needle ${(from + i) % 2 ? 'odd' : 'even'} ${from + i}` }));
          // Ids in append order: a quarter, the next one, then an import into the first (old stamps, new
          // ids: its ids overlap neither range but follow both), rows no quarter holds (the default
          // partition), a resend stamped in the newest quarter, and other archives' rows between them.
          const order: ArchiveEntry[] = [];
          for (const batch of [
            rows(0, 30, '2025-07-10T00:00:00Z'), rows(500, 20, '2025-07-12T00:00:00Z', OTHER),
            rows(30, 30, '2025-10-10T00:00:00Z'),
            rows(60, 20, '2025-08-01T00:00:00Z'),
            rows(80, 5, '2001-01-01T00:00:00Z'),
            rows(85, 3, '2025-10-01T00:00:00Z'), rows(600, 3, '2025-10-01T00:00:00Z', OTHER),
          ]) {
            await s.archive.append(batch);
            order.push(...batch.filter((e) => e.archive === ROOM));
          }
          const inIdOrder = order.map((e) => e.stanzaId);
          // Walk a query's pages forwards (after) and backwards (before) with a page of 7.
          const walk = async (base: Partial<ArchiveQuery>, expected: string[]) => {
            const forwards: string[] = [];
            let after: string | undefined;
            for (let page = 0; page < 50; page++) {
              const r = await s.archive.query(ROOM, { ...base, limit: 7, ...(after ? { after } : {}) });
              expect(r.firstIndex ?? forwards.length, JSON.stringify(base)).to.equal(forwards.length);
              forwards.push(...sids(r));
              if (r.complete) break;
              after = r.entries[r.entries.length - 1]!.stanzaId;
            }
            expect(forwards, JSON.stringify(base)).to.deep.equal(expected);
            const backwards: string[] = [];
            let before: string | true = true;
            for (let page = 0; page < 50; page++) {
              const r = await s.archive.query(ROOM, { ...base, limit: 7, before });
              expect(r.count, JSON.stringify(base)).to.equal(expected.length);
              expect(r.firstIndex, JSON.stringify(base)).to.equal(expected.length - backwards.length - r.entries.length);
              backwards.unshift(...sids(r));
              if (r.complete) break;
              before = r.entries[0]!.stanzaId;
            }
            expect(backwards, JSON.stringify(base)).to.deep.equal(expected);
          };
          await walk({}, inIdOrder);
          await walk({ fulltext: 'needle' }, [...inIdOrder].reverse());
          await walk({ fulltext: 'odd' }, inIdOrder.filter((id) => Number(id.slice(3)) % 2 === 1).reverse());
          await walk({ match: { text: 'needle', mode: 'all', caseSensitive: false } }, [...inIdOrder].reverse());
          await walk({ authors: { realJids: ['user1@example.com'] } }, order.filter((e) => e.realJid === 'user1@example.com').map((e) => e.stanzaId).reverse());
          // A page by id cursor (after-id / before-id) across the quarters.
          const mid = await s.archive.query(ROOM, { afterId: entry(25).stanzaId, beforeId: entry(83).stanzaId, limit: 100 });
          expect(sids(mid)).to.deep.equal(inIdOrder.slice(inIdOrder.indexOf(entry(25).stanzaId) + 1, inIdOrder.indexOf(entry(83).stanzaId)));
          const newest = await s.archive.query(ROOM, { fulltext: 'needle', afterId: entry(60).stanzaId, limit: 4 });
          expect(sids(newest)).to.deep.equal([87, 86, 85, 84].map((n) => entry(n).stanzaId));
          // Beyond the searches' count bound (200 for match): no count, pages still whole and in order.
          await s.archive.append(rows(1000, 250, '2025-07-20T00:00:00Z'));
          const many = await s.archive.query(ROOM, { match: { text: 'needle', mode: 'all', caseSensitive: false }, limit: 5 });
          expect(sids(many)).to.deep.equal([1249, 1248, 1247, 1246, 1245].map((n) => entry(n).stanzaId));
          expect([many.count, many.firstIndex, many.complete]).to.deep.equal([undefined, 0, false]);
          const oldest = await s.archive.query(ROOM, { match: { text: 'needle', mode: 'all', caseSensitive: false }, before: true, limit: 3 });
          expect(sids(oldest)).to.deep.equal([2, 1, 0].map((n) => entry(n).stanzaId));
          expect(oldest.count).to.equal(undefined);
          const fts = await s.archive.query(ROOM, { fulltext: 'needle', limit: 0 });
          expect(fts.count).to.equal(88 + 250);
        });

        it('finds a word rare in the table only in its archive, in a large archive as in a small one, count bound kept', async function () {
          this.timeout(60000);
          const OTHER = 'other@conference.example.com';
          const filler = Array.from({ length: 3_100 }, (_, n) => entry(n, { body: `filler ${n % 7}` }));
          for (const n of [10, 1500, 3000]) filler[n] = entry(n, { body: 'a rareword here' });
          await s.archive.append(filler);
          await s.archive.append(Array.from({ length: 5 }, (_, n) => entry(n, { archive: OTHER, body: 'rareword elsewhere' })));
          await s.db.query('ANALYZE archive');
          const ids = (...n: number[]) => n.map((i) => entry(i).stanzaId);
          for (const room of [ROOM, OTHER]) {
            const expected = room === ROOM ? ids(3000, 1500, 10) : ids(4, 3, 2, 1, 0);
            const all = await s.archive.query(room, { fulltext: 'rareword', limit: 10 });
            expect([sids(all), all.count, all.complete]).to.deep.equal([expected, expected.length, true]);
            const first = await s.archive.query(room, { fulltext: 'rareword', limit: 2 });
            expect([sids(first), first.count, first.firstIndex]).to.deep.equal([expected.slice(0, 2), expected.length, 0]);
            const rest = await s.archive.query(room, { fulltext: 'rareword', limit: 2, after: expected[1] });
            expect([sids(rest), rest.firstIndex]).to.deep.equal([expected.slice(2, 4), 2]);
            const last = await s.archive.query(room, { match: { text: 'RAREWORD', mode: 'any', caseSensitive: false }, limit: 2, before: true });
            expect([sids(last), last.firstIndex]).to.deep.equal([expected.slice(-2), expected.length - 2]);
          }
          // A common word there (3,097 rows): over the count bound, no count.
          expect((await s.archive.query(ROOM, { fulltext: 'filler', limit: 0 })).count).to.equal(undefined);
          // At the searches' count bound (200 for match) the count is exact; one more and it is left out,
          // the first and last pages the same either way.
          const edge = (n: number) => entry(5_000 + n, { body: `edgeword ${n}` });
          await s.archive.append(Array.from({ length: 200 }, (_, n) => edge(n)));
          const m = (extra: Partial<ArchiveQuery>) => s.archive.query(ROOM, { match: { text: 'edgeword', mode: 'all', caseSensitive: false }, limit: 3, ...extra });
          const [at, atLast] = [await m({}), await m({ before: true })];
          expect([sids(at), at.count, at.firstIndex, sids(atLast), atLast.firstIndex]).to.deep.equal([
            [edge(199), edge(198), edge(197)].map((e) => e.stanzaId), 200, 0, [edge(2), edge(1), edge(0)].map((e) => e.stanzaId), 197]);
          await s.archive.append([edge(200)]);
          const [over, overLast] = [await m({}), await m({ before: true })];
          expect([sids(over), over.count, over.firstIndex, sids(overLast), overLast.firstIndex]).to.deep.equal([
            [edge(200), edge(199), edge(198)].map((e) => e.stanzaId), undefined, 0, [edge(2), edge(1), edge(0)].map((e) => e.stanzaId), undefined]);
        });

        it('searches several archives together, newest first by row id, with paging, counts and authors', async function () {
          const A = ROOM;
          const B = 'b@conference.example.com';
          const C = 'c@conference.example.com';
          // Interleaved: row ids alternate between the rooms.
          const batch: ArchiveEntry[] = [];
          for (let n = 0; n < 6; n++) {
            batch.push(entry(n, { body: `release note ${n}` }));
            batch.push(entry(n, { archive: B, fromJid: `${B}/nick${n % 3}`, body: n % 2 ? `release party ${n}` : `lunch ${n}` }));
            batch.push(entry(n, { archive: C, fromJid: `${C}/nick${n % 3}`, body: `release secret ${n}` }));
          }
          await s.archive.append(batch);
          const tag = (e: ArchivedMessage) => `${e.archive[0]}${e.stanzaId.slice(-1)}`;
          const tags = (r: { entries: ArchivedMessage[] }) => r.entries.map(tag);
          const release = { text: 'release', mode: 'all' as const, caseSensitive: false };

          const first = await s.archive.search([A, B], { match: release, limit: 4 });
          expect(tags(first)).to.deep.equal(['b5', 'r5', 'r4', 'b3']);
          expect(first.count).to.equal(9);
          expect(first.firstIndex).to.equal(0);
          expect(first.complete).to.equal(false);
          const second = await s.archive.search([A, B], { match: release, after: first.entries[3]!.id, limit: 4 });
          expect(tags(second)).to.deep.equal(['r3', 'r2', 'b1', 'r1']);
          expect(second.firstIndex).to.equal(4);
          const third = await s.archive.search([A, B], { match: release, after: second.entries[3]!.id, limit: 4 });
          expect(tags(third)).to.deep.equal(['r0']);
          expect(third.complete).to.equal(true);
          // Backwards: the last page, then the one before it.
          const last = await s.archive.search([A, B], { match: release, before: true, limit: 2 });
          expect(tags(last)).to.deep.equal(['r1', 'r0']);
          expect(last.firstIndex).to.equal(7);
          const prev = await s.archive.search([A, B], { match: release, before: last.entries[0]!.id, limit: 2 });
          expect(tags(prev)).to.deep.equal(['r2', 'b1']);
          // An archive not named never shows, nor counts.
          expect(tags(await s.archive.search([C], { match: { ...release, text: 'secret' }, limit: 2 }))).to.deep.equal(['c5', 'c4']);
          expect((await s.archive.search([A, B], { match: { ...release, text: 'secret' }, limit: 2 })).count).to.equal(0);
          expect(await s.archive.search([], { limit: 5 })).to.deep.equal({ entries: [], complete: true, count: 0 });
          // Without filters the count is the archives' sizes.
          expect((await s.archive.search([A, B], { limit: 1 })).count).to.equal(12);
          // Date window and fulltext.
          expect(tags(await s.archive.search([A, B], { start: minute(4), end: minute(5), fulltext: 'release', limit: 10 }))).to.deep.equal(['b5', 'r5', 'r4']);
          // Authors: real JIDs only in the archives allowed, occupants anywhere.
          const byUser1 = await s.archive.search([A, B], { authors: { realJids: ['user1@example.com'], realJidArchives: [B] }, limit: 10 });
          expect(tags(byUser1)).to.deep.equal(['b4', 'b1']);
          const both = await s.archive.search([A, B], { authors: { realJids: ['user1@example.com'], occupants: [`${A}/nick2`] }, limit: 10 });
          expect(tags(both)).to.deep.equal(['r5', 'b4', 'r4', 'r2', 'b1', 'r1']);
          expect(tags(await s.archive.search([A, B], { authors: {}, limit: 10 }))).to.deep.equal([]);
          // A search counts up to 200 matching rows and leaves the count out beyond.
          await s.archive.append(Array.from({ length: 201 }, (_, n) => entry(100 + n, { archive: C, body: 'many' })));
          const many = await s.archive.search([C], { match: { ...release, text: 'many' }, limit: 5 });
          expect(many.entries).to.have.length(5);
          expect(many.count).to.equal(undefined);
          expect((await s.archive.search([C], { match: { ...release, text: 'many' }, start: minute(102), limit: 5 })).count).to.equal(199);
        });

        it('removeArchive deletes one archive whole and nothing else', async function () {
          const OTHER = 'other@conference.example.com';
          await s.archive.append(Array.from({ length: 5 }, (_, n) => entry(n)));
          await s.archive.append([entry(0, { archive: OTHER }), entry(1, { archive: OTHER })]);
          expect(await s.archive.removeArchive(ROOM)).to.equal(5);
          expect(await s.archive.query(ROOM, { limit: 10 })).to.deep.equal({ entries: [], complete: true, count: 0 });
          expect(await s.archive.get(ROOM, entry(0).stanzaId)).to.equal(null);
          expect((await s.archive.query(OTHER, { limit: 10 })).count).to.equal(2);
          expect(await s.archive.removeArchive(ROOM)).to.equal(0);
          // The same address can start a new archive (an account registered again).
          await s.archive.append([entry(0)]);
          expect((await s.archive.get(ROOM, entry(0).stanzaId))?.body).to.equal('message 0');
        });

        it('lastN returns the newest entries oldest first within the count, age and size limits', async function () {
          await s.archive.append(Array.from({ length: 12 }, (_, n) => entry(n)));
          await s.archive.append([entry(50, { archive: 'other@conference.example.com' })]);
          expect((await s.archive.lastN(ROOM, 3)).map((e) => e.stanzaId)).to.deep.equal(range(9, 12));
          expect((await s.archive.lastN(ROOM, 100)).map((e) => e.stanzaId)).to.deep.equal(range(0, 12));
          expect(await s.archive.lastN(ROOM, 0)).to.deep.equal([]);
          expect(await s.archive.lastN('empty@conference.example.com', 10)).to.deep.equal([]);
          expect((await s.archive.lastN(ROOM, 10, { since: minute(8) })).map((e) => e.stanzaId)).to.deep.equal(range(8, 12));
          const size = entry(11).stanza.length;
          expect(entry(10).stanza.length).to.equal(size);
          const bySize = await s.archive.lastN(ROOM, 10, { maxChars: 3 * size + 1 });
          expect(bySize.map((e) => e.stanzaId)).to.deep.equal(range(9, 12));
          expect(bySize[0]).to.deep.equal({ ...entry(9), id: bySize[0]!.id, retracted: false });
          expect(await s.archive.lastN(ROOM, 10, { maxChars: size - 1 })).to.deep.equal([]);
          expect(await s.archive.lastN(ROOM, 10, { maxChars: 0 })).to.deep.equal([]);
          expect((await s.archive.lastN(ROOM, 2, { maxChars: 100 * size, since: minute(5) })).map((e) => e.stanzaId)).to.deep.equal(
            range(10, 12),
          );
        });

        it('deleteBefore removes the oldest entries on or before a time, in batches, keeping counts and bytes', async function () {
          const OTHER = 'other@conference.example.com';
          await s.archive.append(Array.from({ length: 10 }, (_, n) => entry(n)));
          await s.archive.append([entry(0, { archive: OTHER })]);
          const bytes = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => Buffer.byteLength(entry(from + i).stanza)).reduce((a, b) => a + b, 0);
          expect(await s.archive.sizes([ROOM, OTHER, 'none@conference.example.com'])).to.deep.equal(new Map([
            [ROOM, { messages: 10, bytes: bytes(0, 10) }], [OTHER, { messages: 1, bytes: bytes(0, 1) }],
          ]));
          // Entries 0..6 are on or before minute 6: three per batch, oldest first.
          expect(await s.archive.deleteBefore(ROOM, minute(6), 3)).to.equal(3);
          expect(sids(await s.archive.query(ROOM, { limit: 20 }))).to.deep.equal(range(3, 10));
          expect(await s.archive.deleteBefore(ROOM, minute(6), 3)).to.equal(3);
          expect(await s.archive.deleteBefore(ROOM, minute(6), 3)).to.equal(1);
          expect(await s.archive.deleteBefore(ROOM, minute(6), 3)).to.equal(0);
          expect(sids(await s.archive.query(ROOM, { limit: 20 }))).to.deep.equal(range(7, 10));
          expect(await s.archive.deleteBefore(ROOM, minute(100), 0)).to.equal(0);
          expect((await s.archive.sizes([ROOM])).get(ROOM)).to.deep.equal({ messages: 3, bytes: bytes(7, 10) });
          expect((await s.archive.query(ROOM, { limit: 0 })).count).to.equal(3);
          expect((await s.archive.sizes([OTHER])).get(OTHER)).to.deep.equal({ messages: 1, bytes: bytes(0, 1) });
        });

        it('rewrite replaces stanzas and bodies in one statement, and the bytes follow', async function () {
          await s.archive.append(Array.from({ length: 4 }, (_, n) => entry(n, { body: `secret plan ${n}` })));
          const before = (await s.archive.sizes([ROOM])).get(ROOM)!;
          const tomb = '<message type="groupchat"><retracted/></message>';
          const replaced = '<message type="groupchat"><body>replaced by the administrator</body></message>';
          const found = await s.archive.rewrite(ROOM, [
            { stanzaId: entry(1).stanzaId, stanza: tomb, body: null, retracted: true },
            { stanzaId: entry(2).stanzaId, stanza: replaced, body: 'replaced by the administrator', retracted: false },
            { stanzaId: 'missing', stanza: tomb, body: null, retracted: true },
          ]);
          expect([...found].sort()).to.deep.equal([entry(1).stanzaId, entry(2).stanzaId]);
          expect(await s.archive.rewrite(ROOM, [])).to.deep.equal([]);
          const one = await s.archive.get(ROOM, entry(1).stanzaId);
          expect([one?.stanza, one?.body, one?.retracted]).to.deep.equal([tomb, null, true]);
          const two = await s.archive.get(ROOM, entry(2).stanzaId);
          expect([two?.stanza, two?.body, two?.retracted]).to.deep.equal([replaced, 'replaced by the administrator', false]);
          // Searches see the new bodies only.
          const hits = async (text: string) => sids(await s.archive.query(ROOM, { match: { text, mode: 'all', caseSensitive: false }, limit: 10 }));
          expect(await hits('secret')).to.deep.equal([entry(3).stanzaId, entry(0).stanzaId]);
          expect(await hits('administrator')).to.deep.equal([entry(2).stanzaId]);
          const delta = Buffer.byteLength(tomb) + Buffer.byteLength(replaced) - 2 * Buffer.byteLength(entry(1).stanza);
          expect((await s.archive.sizes([ROOM])).get(ROOM)).to.deep.equal({ messages: 4, bytes: before.bytes + delta });
          // A multi-byte stanza counts its UTF-8 octets.
          await s.archive.append([entry(9, { stanza: '<message><body>héllo ✓</body></message>' })]);
          expect((await s.archive.sizes([ROOM])).get(ROOM)!.bytes).to.equal(before.bytes + delta + Buffer.byteLength('<message><body>héllo ✓</body></message>'));
        });
      });

      describe('concurrent reads (batched)', function () {
        const users = Array.from({ length: 24 }, (_, n) => `u${String(n).padStart(2, '0')}`);
        const credsOf = new Map<string, StoredCredentials>();
        /** Each call of every name, plus a second call of every third name, all in flight at once. */
        const calls = [...users, 'nobody', ...users.filter((_, n) => n % 3 === 0)];

        beforeEach(async function () {
          for (const [n, u] of users.entries()) {
            const c = creds(n);
            credsOf.set(u, c);
            await s.users.create(u, c);
          }
        });

        it('users.get gives each caller its own account', async function () {
          const got = await Promise.all(calls.map((u) => s.users.get(u)));
          for (const [n, u] of calls.entries()) {
            if (u === 'nobody') {
              expect(got[n]).to.equal(null);
              continue;
            }
            expect(got[n]!.username).to.equal(u);
            expect(got[n]!.credentials.sha256!.storedKey.equals(credsOf.get(u)!.sha256!.storedKey)).to.equal(true);
            expect(Buffer.isBuffer(got[n]!.credentials.sha1.salt)).to.equal(true);
          }
        });

        it('shares one statement between concurrent callers', async function () {
          let queries = 0;
          const counted: Db = {
            ...s.db,
            query: (sql, params) => (queries++, s.db.query(sql, params)),
            queryPrepared: (sql, params) => (queries++, s.db.queryPrepared(sql, params)),
          };
          const c = createSqlStores(counted);
          await Promise.all(calls.map((u) => c.users.get(u)));
          expect(queries).to.equal(1);
          queries = 0;
          await Promise.all(calls.flatMap((u) => [c.roster.get(u), c.roster.listPendingIn(u), c.offline.take(u)]));
          expect(queries).to.equal(3);
          queries = 0;
          // every kind asked for in one turn (the modules' session-start reads) in the same statement
          await Promise.all(calls.flatMap((u) => [c.userData.list(u, 'blocklist'), c.userData.list(u, 'prefs'), c.userData.list(u, 'vcard')]));
          expect(queries).to.equal(1);
          queries = 0;
          await Promise.all(calls.map((u) => c.sessionStart.read(u)));
          expect(queries).to.equal(1);
        });

        it('sessionStart.read gives each caller its own roster, version, waiting requests and offline count, as the single reads do', async function () {
          for (const [n, u] of users.entries()) {
            const items = ['B', 'a', 'c'].slice(0, n % 4).map((p) => item(`${p}${n}@example.com`, { name: n % 2 ? u : null, groups: n % 3 ? [u, 'Zz'] : [] }));
            for (const it of items) await s.roster.put(u, it);
            for (const p of ['z', 'Y'].slice(0, n % 3)) await s.roster.putPendingIn(u, `${p}${n}@example.com`, `<presence n="${u}"/>`);
            for (let k = 0; k < n % 5; k++) await s.offline.push(u, `<message n="${k}"/>`, 100);
          }
          const got = await Promise.all(calls.map((u) => s.sessionStart.read(u)));
          for (const [n, u] of calls.entries()) {
            expect(got[n]!.roster, u).to.deep.equal(await s.roster.get(u));
            expect(got[n]!.pendingIn, u).to.deep.equal(await s.roster.listPendingIn(u));
            expect(got[n]!.offlineCount, u).to.equal(await s.offline.count(u));
          }
          expect(got[calls.indexOf('u04')]!.offlineCount).to.equal(4);
          expect(got[calls.indexOf('nobody')]).to.deep.equal({ roster: { version: 0, items: [] }, pendingIn: [], offlineCount: 0 });
        });

        it('a name the database refuses fails only its own caller', async function () {
          const results = await Promise.allSettled([s.users.get('u01'), s.users.get('bad\0name'), s.roster.get('u02')]);
          expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
          expect((results[0] as PromiseFulfilledResult<{ username: string }>).value.username).to.equal('u01');
        });

        it('roster.get gives each caller its own items in byte order and its own version', async function () {
          const expected = new Map<string, { version: number; items: RosterItem[] }>();
          for (const [n, u] of users.entries()) {
            // n % 4 items, inserted in reverse, with an upper-case JID to check byte order.
            const items = ['B', 'a', 'c'].slice(0, n % 4).map((p) => item(`${p}${n}@example.com`, { name: u, groups: [u] }));
            for (const it of [...items].reverse()) await s.roster.put(u, it);
            if (n % 5 === 0 && items.length > 0) {
              await s.roster.remove(u, items[0]!.jid);
              items.shift();
            }
            const version = n % 4 + (n % 5 === 0 && n % 4 > 0 ? 1 : 0);
            expected.set(u, { version, items: items.sort((x, y) => Buffer.compare(Buffer.from(x.jid), Buffer.from(y.jid))) });
          }
          expected.set('nobody', { version: 0, items: [] });
          const got = await Promise.all(calls.map((u) => s.roster.get(u)));
          for (const [n, u] of calls.entries()) expect(got[n], u).to.deep.equal(expected.get(u));
        });

        it('roster.listPendingIn gives each caller its own requests in byte order', async function () {
          const expected = new Map<string, { jid: string; stanza: string }[]>([['nobody', []]]);
          for (const [n, u] of users.entries()) {
            const pending = ['z', 'Y', 'x'].slice(0, n % 4).map((p) => ({ jid: `${p}${n}@example.com`, stanza: `<presence n="${u}"/>` }));
            for (const p of pending) await s.roster.putPendingIn(u, p.jid, p.stanza);
            expected.set(u, pending.sort((x, y) => Buffer.compare(Buffer.from(x.jid), Buffer.from(y.jid))));
          }
          const got = await Promise.all(calls.map((u) => s.roster.listPendingIn(u)));
          for (const [n, u] of calls.entries()) expect(got[n], u).to.deep.equal(expected.get(u));
        });

        it('userData.list gives each caller its own entries of the kind asked for', async function () {
          for (const [n, u] of users.entries()) {
            for (let k = n % 3; k >= 0; k--) await s.userData.put(u, 'blocklist', `${k}-${u}@example.com`, `b${n}`);
            await s.userData.put(u, 'prefs', 'p', `p${n}`);
          }
          const got = await Promise.all(calls.flatMap((u) => [s.userData.list(u, 'blocklist'), s.userData.list(u, 'prefs')]));
          for (const [n, u] of calls.entries()) {
            const index = users.indexOf(u);
            const blocks = index < 0 ? [] : Array.from({ length: index % 3 + 1 }, (_, k) => ({ key: `${k}-${u}@example.com`, value: `b${index}` }));
            expect(got[2 * n], u).to.deep.equal(blocks);
            expect(got[2 * n + 1], u).to.deep.equal(index < 0 ? [] : [{ key: 'p', value: `p${index}` }]);
          }
        });

        it('offline.take gives each user its own messages oldest first, once', async function () {
          for (const [n, u] of users.entries()) {
            for (let m = 0; m < n % 4; m++) await s.offline.push(u, `<message to="${u}" n="${m}"/>`, 10);
          }
          const got = await Promise.all(calls.map((u) => s.offline.take(u)));
          const byUser = new Map<string, string[]>();
          for (const [n, u] of calls.entries()) {
            const ids = got[n]!.map((m) => m.id);
            expect(ids, u).to.deep.equal([...ids].sort((a, b) => a - b));
            byUser.set(u, [...(byUser.get(u) ?? []), ...got[n]!.map((m) => m.stanza)]);
          }
          for (const [n, u] of users.entries()) {
            expect(byUser.get(u), u).to.deep.equal(Array.from({ length: n % 4 }, (_, m) => `<message to="${u}" n="${m}"/>`));
          }
          expect(byUser.get('nobody')).to.deep.equal([]);
          for (const u of users) expect(await s.offline.count(u)).to.equal(0);
        });

        it('offline.take concurrent for one user returns the messages once in total', async function () {
          for (let m = 0; m < 5; m++) await s.offline.push('u01', `<message n="${m}"/>`, 10);
          const got = await Promise.all([1, 2, 3, 4].map(() => s.offline.take('u01')));
          expect(got.flat().map((m) => m.stanza)).to.deep.equal([0, 1, 2, 3, 4].map((m) => `<message n="${m}"/>`));
          expect(got.filter((g) => g.length > 0)).to.have.length(1);
        });

        it('offline.take interleaved with pushes over many turns neither loses nor repeats a message', async function () {
          const pushed: string[] = [];
          const taken: string[] = [];
          const work: Promise<unknown>[] = [];
          for (let round = 0; round < 10; round++) {
            for (const u of ['u01', 'u02']) {
              const stanza = `<message to="${u}" r="${round}"/>`;
              work.push(s.offline.push(u, stanza, 100).then((ok) => ok && pushed.push(stanza)));
              work.push(s.offline.take(u).then((ms) => taken.push(...ms.map((m) => m.stanza))));
            }
            if (round % 3 === 0) await new Promise((r) => setImmediate(r));
          }
          await Promise.all(work);
          for (const u of ['u01', 'u02']) taken.push(...(await s.offline.take(u)).map((m) => m.stanza));
          expect([...taken].sort()).to.deep.equal([...pushed].sort());
          expect(pushed).to.have.length(20);
        });
      });

      describe('transfer (export and import)', function () {
        const msg = (archive: string, n: number, extra: Partial<ArchiveEntry & { retracted: boolean }> = {}) => ({
          archive, stanzaId: `t-${n}`, stamp: new Date(Date.UTC(2026, 0, 1, 0, n)), fromJid: `${archive}/nick`, realJid: 'u@example.com',
          body: `text ${n}`, stanza: `<message n="${n}"><body>text ${n}</body></message>`, retracted: false, ...extra,
        });
        beforeEach(async function () {
          await s.db.query('TRUNCATE archive, chat_invitations');
        });

        it('pages users in byte order and puts a user whole (credentials, disabled, creation time), inserting or replacing', async function () {
          for (const u of ['b', 'a', 'B', 'c']) await s.users.create(u, creds(1));
          const first = await s.transfer.users(null, 2);
          expect(first.map((u) => u.username)).to.deep.equal(['B', 'a']);
          expect((await s.transfer.users('a', 10)).map((u) => u.username)).to.deep.equal(['b', 'c']);
          const c = creds(7);
          const created = new Date('2020-02-03T04:05:06.000Z');
          await s.transfer.putUser({ username: 'a', disabled: true, createdAt: created, credentials: c });
          await s.transfer.putUser({ username: 'new', disabled: false, createdAt: created, credentials: c });
          for (const name of ['a', 'new']) {
            const got = (await s.users.get(name))!;
            expect(got.credentials.sha256!.storedKey.equals(c.sha256!.storedKey)).to.equal(true);
            expect(got.credentials.sha1.salt.equals(c.sha1.salt)).to.equal(true);
            expect(got.createdAt.toISOString()).to.equal(created.toISOString());
            expect(got.disabled).to.equal(name === 'a');
          }
        });

        it('reads all user data and the offline queue without taking it; restores offline messages once', async function () {
          await s.users.create('u', creds(1));
          await s.userData.put('u', 'vcard', '', '<vCard/>');
          await s.userData.put('u', 'private', 'x:y', '<y/>');
          expect(await s.transfer.userData('u')).to.deep.equal([
            { kind: 'private', key: 'x:y', value: '<y/>' }, { kind: 'vcard', key: '', value: '<vCard/>' },
          ]);
          await s.offline.push('u', '<message n="1"/>', 10);
          const queued = await s.transfer.offline('u');
          expect(queued.map((m) => m.stanza)).to.deep.equal(['<message n="1"/>']);
          expect(await s.offline.count('u')).to.equal(1);
          const old = { stanza: '<message n="0"/>', stamp: new Date('2025-01-01T00:00:00.000Z') };
          expect(await s.transfer.restoreOffline('u', [old, queued[0]!])).to.equal(1);
          expect(await s.transfer.restoreOffline('u', [old])).to.equal(0);
          const taken = await s.offline.take('u');
          expect(taken.map((m) => m.stanza).sort()).to.deep.equal(['<message n="0"/>', '<message n="1"/>']);
          expect(taken.find((m) => m.stanza === old.stanza)!.stamp.toISOString()).to.equal(old.stamp.toISOString());
        });

        it('lists org-unit placements and every invitation by id; restores invitations with their time, once', async function () {
          await s.directory.putOrgUnit('/corp', '');
          await s.directory.setUserOrgUnit('z@example.com', '/corp');
          await s.directory.setUserOrgUnit('a@example.com', '/corp');
          expect(await s.transfer.userOrgUnits()).to.deep.equal([{ user: 'a@example.com', path: '/corp' }, { user: 'z@example.com', path: '/corp' }]);
          await s.chat.addInvitations([{ user: 'a@example.com', service: 'conf.example.com', room: 'r', inviter: 'b@example.com' }]);
          const [inv] = await s.transfer.invitations(0, 10);
          const at = new Date('2024-05-06T07:08:09.000Z');
          const item = { user: 'c@example.com', service: 'conf.example.com', room: 'r', inviter: 'b@example.com', at };
          expect(await s.transfer.restoreInvitations([item])).to.equal(1);
          expect(await s.transfer.restoreInvitations([item])).to.equal(0);
          const all = await s.transfer.invitations(0, 10);
          expect(all.map((i) => i.user)).to.deep.equal(['a@example.com', 'c@example.com']);
          expect(all[1]!.at.toISOString()).to.equal(at.toISOString());
          expect((await s.transfer.invitations(inv!.id, 10)).map((i) => i.user)).to.deep.equal(['c@example.com']);
        });

        // Old history restored into the default partition was moved by the next start, in one transaction:
        // at ten million rows the server did not listen within minutes.
        it('restores history older than the archive\'s partitions into partitions of its own quarters', async function () {
          const room = 'old@conf.example.com';
          const at = (iso: string, n: number) => ({ ...msg(room, n), stamp: new Date(iso) });
          expect(await s.transfer.restoreMessages([at('2021-02-03T04:05:06Z', 1), at('2021-08-09T10:11:12Z', 2)])).to.equal(2);
          // Older still, in a later batch: its quarter is made too.
          expect(await s.transfer.restoreMessages([at('2019-11-30T23:59:59Z', 3)])).to.equal(1);
          const where = await s.db.query<{ part: string; n: unknown }>(
            'SELECT tableoid::regclass::text AS part, count(*) AS n FROM archive WHERE archive = $1 GROUP BY 1 ORDER BY 1', [room]);
          expect(where.map((r) => [r.part, Number(r.n)])).to.deep.equal([['archive_p201910', 1], ['archive_p202101', 1], ['archive_p202107', 1]]);
          expect((await s.archive.query(room, { limit: 10 })).entries.map((e) => e.stanzaId)).to.deep.equal(['t-1', 't-2', 't-3']);
        });

        it('scans messages by id with since, archive and domain filters; restores them once, retracted flag kept, counts and search following', async function () {
          const room = 'r@conf.example.com';
          const own = 'u@example.com';
          expect(await s.transfer.restoreMessages([msg(room, 1), msg(room, 2, { retracted: true, body: null }), msg(own, 3), msg(room, 1)])).to.equal(3);
          expect(await s.transfer.restoreMessages([msg(room, 1), msg(room, 4)])).to.equal(1);
          const ids = (ms: { stanzaId: string }[]) => ms.map((m) => m.stanzaId);
          const all = await s.transfer.messages({ afterId: 0, limit: 10 });
          expect(ids(all)).to.deep.equal(['t-1', 't-2', 't-3', 't-4']);
          expect(all[1]!.retracted).to.equal(true);
          expect(ids(await s.transfer.messages({ afterId: all[0]!.id, limit: 2 }))).to.deep.equal(['t-2', 't-3']);
          expect(ids(await s.transfer.messages({ afterId: 0, limit: 10, domains: ['conf.example.com'] }))).to.deep.equal(['t-1', 't-2', 't-4']);
          expect(ids(await s.transfer.messages({ afterId: 0, limit: 10, archives: [own] }))).to.deep.equal(['t-3']);
          expect(ids(await s.transfer.messages({ afterId: 0, limit: 10, since: new Date(Date.UTC(2026, 0, 1, 0, 2)) }))).to.deep.equal(['t-2', 't-3', 't-4']);
          const have = await s.transfer.existingMessages([{ archive: room, stanzaId: 't-1' }, { archive: own, stanzaId: 't-1' }]);
          expect([...have]).to.deep.equal([`${room} t-1`]);
          const page = await s.archive.query(room, { limit: 0 });
          expect(page.count).to.equal(3);
          const found = await s.archive.query(room, { limit: 10, match: { text: 'text', mode: 'all', caseSensitive: false } });
          expect(ids(found.entries).sort()).to.deep.equal(['t-1', 't-4']);
        });
      });
    });
  }

  describe('openDataStores (PGlite)', function () {
    let dir: string;
    before(async function () {
      dir = await mkdtemp(join(tmpdir(), 'perch-store-'));
    });
    after(async function () {
      await rm(dir, { recursive: true, force: true });
    });

    it('runs in memory without a data directory', async function () {
      const s = await openDataStores({ databaseUrl: null, dataDir: null });
      expect(s.db.kind).to.equal('pglite');
      expect(await s.users.create('a', creds(1))).to.equal(true);
      await s.db.close();
    });

    it('persists under <dataDir>/pglite and migrates only once', async function () {
      const progress: string[] = [];
      const a = await openDataStores({ databaseUrl: null, dataDir: dir, onMigrationProgress: (_d, _t, name) => progress.push(name) });
      expect(progress).to.deep.equal(migrations.map((m) => m.name));
      expect((await stat(join(dir, 'pglite'))).isDirectory()).to.equal(true);
      await a.users.create('kept', creds(3));
      await a.roster.put('kept', item('x@example.com'));
      await a.db.close();

      progress.length = 0;
      const b = await openDataStores({ databaseUrl: null, dataDir: dir, onMigrationProgress: (_d, _t, name) => progress.push(name) });
      expect(progress).to.deep.equal([]);
      expect(await b.users.list()).to.deep.equal(['kept']);
      expect((await b.roster.get('kept')).version).to.equal(1);
      await b.db.close();
    });
  });
});

