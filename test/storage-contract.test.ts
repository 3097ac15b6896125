// One behavioural suite per store family, run against every backend. PostgreSQL and Redis suites
// skip with a warning when the service is unreachable, except in CI where they fail.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { openPglite } from '../storage/db-pglite.js';
import { openPostgres } from '../storage/db-postgres.js';
import { migrate, migrations } from '../storage/migrations.js';
import { openDataStores, openSessionStore } from '../storage/open.js';
import { MemorySessionStore } from '../storage/session-memory.js';
import { RedisSessionStore, type RedisSessionStoreOptions } from '../storage/session-redis.js';
import { createSqlStores } from '../storage/sql-stores.js';
import type { DataStores, Db, RosterItem, SessionRecord, SessionStore, StoredCredentials } from '../storage/types.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const rand = () => randomBytes(6).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

const probes = new Map<string, Promise<void>>();
/** Skips the suite when a service is down, or fails it when running in CI. */
async function requireService(ctx: Mocha.Context, name: string, url: string, probe: () => Promise<void>): Promise<void> {
  if (!probes.has(name)) probes.set(name, probe());
  try {
    await probes.get(name);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    if (process.env.CI === 'true') throw new Error(`${name} at ${url} is required in CI but unreachable: ${why}`);
    console.warn(`    ${name} at ${url} unreachable (${why}): skipping its suites`);
    ctx.skip();
  }
}

async function probePostgres(): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => {});
  }
}

function redisClient(): Redis {
  return new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 3000 });
}

async function probeRedis(): Promise<void> {
  const r = redisClient();
  r.on('error', () => {});
  try {
    await r.connect();
    await r.ping();
  } finally {
    r.disconnect();
  }
}

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
            const got = u!.credentials[alg];
            expect(Buffer.isBuffer(got.salt) && Buffer.isBuffer(got.storedKey) && Buffer.isBuffer(got.serverKey)).to.equal(true);
            expect(got.salt.equals(c[alg].salt)).to.equal(true);
            expect(got.storedKey.equals(c[alg].storedKey)).to.equal(true);
            expect(got.serverKey.equals(c[alg].serverKey)).to.equal(true);
            expect(got.iterations).to.equal(c[alg].iterations);
          }
          expect(await s.users.get('nobody')).to.equal(null);
        });

        it('replaces credentials and toggles disabled', async function () {
          await s.users.create('bob', creds(1));
          const c = creds(2);
          expect(await s.users.setCredentials('bob', c)).to.equal(true);
          expect((await s.users.get('bob'))!.credentials.sha256.storedKey.equals(c.sha256.storedKey)).to.equal(true);
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
            expect(got[n]!.credentials.sha256.storedKey.equals(credsOf.get(u)!.sha256.storedKey)).to.equal(true);
            expect(Buffer.isBuffer(got[n]!.credentials.sha1.salt)).to.equal(true);
          }
        });

        it('shares one statement between concurrent callers', async function () {
          let queries = 0;
          const counted: Db = { ...s.db, query: (sql, params) => (queries++, s.db.query(sql, params)) };
          const c = createSqlStores(counted);
          await Promise.all(calls.map((u) => c.users.get(u)));
          expect(queries).to.equal(1);
          queries = 0;
          await Promise.all(calls.flatMap((u) => [c.roster.get(u), c.roster.listPendingIn(u), c.offline.take(u)]));
          expect(queries).to.equal(3);
          queries = 0;
          await Promise.all(calls.flatMap((u) => [c.userData.list(u, 'blocklist'), c.userData.list(u, 'prefs')]));
          expect(queries).to.equal(2);
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

// ---------------------------------------------------------------------------------------------
// Session stores

function rec(jid: string, node: string, extra: Partial<SessionRecord> = {}): SessionRecord {
  return {
    jid,
    node,
    priority: 0,
    available: false,
    presence: null,
    interested: false,
    carbons: false,
    since: 1_700_000_000_000,
    ...extra,
  };
}

interface SessionBackend {
  name: string;
  probe?: () => Promise<void>;
  make(nodeId: string): SessionStore;
}

// Each test gets its own key space so runs and tests never see each other.
let prefix = '';
const fast = { heartbeatMs: 100, aliveTtlMs: 500, checkMs: 100 };
function redisStore(nodeId: string, extra: Partial<RedisSessionStoreOptions> = {}): RedisSessionStore {
  return new RedisSessionStore({ url: REDIS_URL, nodeId, prefix, ...extra });
}

const sessionBackends: SessionBackend[] = [
  { name: 'memory', make: (nodeId) => new MemorySessionStore(nodeId) },
  { name: 'Redis', probe: probeRedis, make: (nodeId) => redisStore(nodeId) },
];

describe('session store contract', function () {
  let stores: SessionStore[] = [];
  const track = <S extends SessionStore>(st: S): S => {
    stores.push(st);
    return st;
  };
  beforeEach(function () {
    prefix = `perch-test:${rand()}:`;
  });
  let cleaner: Redis | null = null;
  afterEach(async function () {
    for (const st of stores) await st.close();
    stores = [];
    // Hit counters and whatever a crashed store left behind.
    const keys = cleaner ? await cleaner.keys(`${prefix}*`) : [];
    if (keys.length > 0) await cleaner!.del(...keys);
  });
  after(function () {
    cleaner?.disconnect();
  });

  for (const backend of sessionBackends) {
    describe(backend.name, function () {
      let a: SessionStore;
      before(async function () {
        if (backend.probe) await requireService(this, backend.name, REDIS_URL, backend.probe);
        if (backend.name === 'Redis' && !cleaner) {
          cleaner = redisClient();
          await cleaner.connect();
        }
      });
      beforeEach(async function () {
        a = track(backend.make('node-a'));
        await a.start();
      });

      it('put stores the record and returns the one it replaced', async function () {
        expect(a.nodeId).to.equal('node-a');
        const r1 = rec('u@example.com/phone', 'node-a', { available: true, priority: 5, presence: '<presence/>' });
        expect(await a.put(r1)).to.equal(null);
        expect(a.get('u@example.com/phone')).to.deep.equal(r1);
        const r2 = { ...r1, priority: -1, carbons: true, interested: true };
        expect(await a.put(r2)).to.deep.equal(r1);
        expect(a.get('u@example.com/phone')).to.deep.equal(r2);
        expect(a.count()).to.equal(1);
        expect(a.list()).to.deep.equal([r2]);
        expect(a.get('u@example.com/other')).to.equal(undefined);
      });

      it('finds resources by bare JID', async function () {
        await a.put(rec('u@example.com/a', 'node-a'));
        await a.put(rec('u@example.com/b', 'node-a'));
        await a.put(rec('u@example.com/c/with/slash', 'node-a'));
        await a.put(rec('v@example.com/a', 'node-a'));
        expect(a.resources('u@example.com').map((r) => r.jid).sort()).to.deep.equal([
          'u@example.com/a',
          'u@example.com/b',
          'u@example.com/c/with/slash',
        ]);
        expect(a.resources('v@example.com')).to.have.length(1);
        expect(a.resources('w@example.com')).to.deep.equal([]);
        expect(a.count()).to.equal(4);
      });

      it('removes a record only for its owner node', async function () {
        await a.put(rec('u@example.com/a', 'node-a'));
        await a.put(rec('u@example.com/b', 'node-a'));
        await a.remove('u@example.com/a', 'node-x');
        expect(a.get('u@example.com/a')).to.not.equal(undefined);
        await a.remove('u@example.com/a', 'node-a');
        expect(a.get('u@example.com/a')).to.equal(undefined);
        expect(a.resources('u@example.com').map((r) => r.jid)).to.deep.equal(['u@example.com/b']);
        await a.remove('u@example.com/b', 'node-a');
        expect(a.resources('u@example.com')).to.deep.equal([]);
        expect(a.count()).to.equal(0);
        await a.remove('missing@example.com/x', 'node-a');
      });

      it('delivers send to its own node asynchronously', async function () {
        const got: string[] = [];
        a.onMessage((p) => got.push(`1:${p}`));
        a.onMessage((p) => got.push(`2:${p}`));
        const sent = a.send('node-a', 'hello');
        expect(got).to.deep.equal([]);
        await sent;
        await until(() => got.length === 2);
        expect(got).to.deep.equal(['1:hello', '2:hello']);
        await a.send('node-nobody', 'lost');
        await sleep(50);
        expect(got).to.have.length(2);
      });

      it('counts hits until they expire or are reset', async function () {
        expect(await a.hit('login:1.2.3.4', 1)).to.equal(1);
        expect(await a.hit('login:1.2.3.4', 1)).to.equal(2);
        expect(await a.hit('login:1.2.3.4', 100)).to.equal(3);
        expect(await a.hit('login:5.6.7.8', 1)).to.equal(1);
        await sleep(1200);
        // The TTL runs from the first increment and is not extended by later ones.
        expect(await a.hit('login:1.2.3.4', 1)).to.equal(1);
        expect(await a.hit('reg', 60)).to.equal(1);
        expect(await a.hit('reg', 60)).to.equal(2);
        await a.resetHits('reg');
        expect(await a.hit('reg', 60)).to.equal(1);
        await a.resetHits('never-hit');
      });
    });
  }

  describe('Redis cluster', function () {
    let redis: Redis;
    before(async function () {
      await requireService(this, 'Redis', REDIS_URL, probeRedis);
      if (!cleaner) {
        cleaner = redisClient();
        await cleaner.connect();
      }
      redis = cleaner;
    });

    async function pair(): Promise<[RedisSessionStore, RedisSessionStore]> {
      const a = track(redisStore('node-a', fast));
      const b = track(redisStore('node-b', fast));
      await Promise.all([a.start(), b.start()]);
      return [a, b];
    }

    it('shares records between nodes; resources span nodes', async function () {
      const [a, b] = await pair();
      await a.put(rec('u@example.com/a', 'node-a'));
      await b.put(rec('u@example.com/b', 'node-b', { available: true }));
      await until(() => a.count() === 2 && b.count() === 2);
      for (const st of [a, b]) {
        expect(st.resources('u@example.com').map((r) => `${r.jid} ${r.node}`).sort()).to.deep.equal([
          'u@example.com/a node-a',
          'u@example.com/b node-b',
        ]);
      }
      expect(b.get('u@example.com/a')).to.deep.equal(rec('u@example.com/a', 'node-a'));
    });

    it('put returns the previous owner record across nodes; remove only by owner', async function () {
      const [a, b] = await pair();
      const ra = rec('u@example.com/r', 'node-a');
      await a.put(ra);
      const rb = rec('u@example.com/r', 'node-b', { priority: 9 });
      expect(await b.put(rb)).to.deep.equal(ra);
      await until(() => a.get('u@example.com/r')?.node === 'node-b');
      // node-a's stale clean-up must not remove the session node-b took over.
      await a.remove('u@example.com/r', 'node-a');
      await sleep(100);
      expect(a.get('u@example.com/r')).to.deep.equal(rb);
      expect(b.get('u@example.com/r')).to.deep.equal(rb);
      await a.remove('u@example.com/r', 'node-b');
      await until(() => b.get('u@example.com/r') === undefined);
      expect(a.get('u@example.com/r')).to.equal(undefined);
    });

    it('a node started later loads the existing table', async function () {
      const [a] = await pair();
      await a.put(rec('u@example.com/a', 'node-a'));
      await a.put(rec('v@example.com/a', 'node-a'));
      const c = track(redisStore('node-c', fast));
      await c.start();
      expect(c.list().map((r) => r.jid).sort()).to.deep.equal(['u@example.com/a', 'v@example.com/a']);
      expect(c.resources('u@example.com')).to.have.length(1);
    });

    it('delivers send payloads between nodes', async function () {
      const [a, b] = await pair();
      const gotA: string[] = [];
      const gotB: string[] = [];
      a.onMessage((p) => gotA.push(p));
      b.onMessage((p) => gotB.push(p));
      await a.send('node-b', 'to b');
      await b.send('node-a', 'to a');
      await b.send('node-b', 'to self');
      await until(() => gotA.length === 1 && gotB.length === 2);
      expect(gotA).to.deep.equal(['to a']);
      expect(gotB.sort()).to.deep.equal(['to b', 'to self']);
    });

    it('shares hit counters between nodes', async function () {
      const [a, b] = await pair();
      expect(await a.hit('k', 10)).to.equal(1);
      expect(await b.hit('k', 10)).to.equal(2);
      await a.resetHits('k');
      expect(await b.hit('k', 10)).to.equal(1);
    });

    it('close removes the node records and its alive key', async function () {
      const [a, b] = await pair();
      await a.put(rec('u@example.com/a', 'node-a'));
      await b.put(rec('u@example.com/b', 'node-b'));
      await until(() => b.count() === 2);
      const lost: string[] = [];
      b.onNodeLost((node) => lost.push(node));
      await a.close();
      await until(() => b.count() === 1);
      expect(b.list().map((r) => r.jid)).to.deep.equal(['u@example.com/b']);
      expect(await redis.exists(`${prefix}alive:node-a`)).to.equal(0);
      expect(await redis.exists(`${prefix}alive:node-b`)).to.equal(1);
      await sleep(300);
      expect(lost).to.deep.equal([]);
    });

    it('detects a lost node once cluster-wide and removes its records', async function () {
      const [a, b] = await pair();
      const c = redisStore('node-c', fast);
      await c.start();
      await c.put(rec('u@example.com/c1', 'node-c'));
      await c.put(rec('v@example.com/c2', 'node-c'));
      await a.put(rec('u@example.com/a', 'node-a'));
      await until(() => a.count() === 3 && b.count() === 3);
      const lost: { by: string; node: string; jids: string[] }[] = [];
      a.onNodeLost((node, records) => lost.push({ by: 'a', node, jids: records.map((r) => r.jid).sort() }));
      let mirrorHadIt = false;
      b.onNodeLost((node, records) => {
        lost.push({ by: 'b', node, jids: records.map((r) => r.jid).sort() });
        mirrorHadIt ||= b.get('u@example.com/c1') !== undefined;
      });
      c.crash();
      await until(() => lost.length > 0, 5000);
      await sleep(400);
      expect(lost).to.have.length(1);
      expect(lost[0]!.node).to.equal('node-c');
      expect(lost[0]!.jids).to.deep.equal(['u@example.com/c1', 'v@example.com/c2']);
      // Handlers run after the records are gone from the detecting node's mirror.
      expect(mirrorHadIt).to.equal(false);
      await until(() => a.count() === 1 && b.count() === 1);
      expect(a.resources('u@example.com').map((r) => r.jid)).to.deep.equal(['u@example.com/a']);
      expect(await redis.hlen(`${prefix}sessions`)).to.equal(1);
    });

    it('a restarted node drops the records its previous process left', async function () {
      const c = redisStore('node-c', fast);
      await c.start();
      await c.put(rec('u@example.com/c', 'node-c'));
      c.crash();
      const c2 = track(redisStore('node-c', fast));
      await c2.start();
      expect(c2.count()).to.equal(0);
      expect(await redis.hlen(`${prefix}sessions`)).to.equal(0);
    });
  });

  describe('openSessionStore', function () {
    it('returns a started memory store without Redis', async function () {
      const st = track(await openSessionStore({ redisUrl: null, nodeId: 'solo' }));
      expect(st).to.be.instanceOf(MemorySessionStore);
      expect(st.nodeId).to.equal('solo');
      await st.put(rec('u@example.com/a', 'solo'));
      expect(st.count()).to.equal(1);
    });
  });
});
