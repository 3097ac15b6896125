// A server on PostgreSQL opens its database connections, and makes its first reads on each, before it
// listens: the first requests after a start no longer wait for new backends. A database short of
// connections slows the start and is logged; it never stops the server.
import { expect } from 'chai';
import pg from 'pg';
import {
  startServer, rawLogin, randomName, useTestDatabase, PG_ADMIN_URL, IN_CI, type RunningServer,
} from './harness.js';
import { PLANNED_ONCE_POOL_SIZE, POSTGRES_POOL_SIZE } from '../storage/db-postgres.js';

async function adminQuery<T>(sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/** Backends of the server's pools in a database (the pools name themselves 'perch'). */
async function perchBackends(database: string): Promise<number[]> {
  const rows = await adminQuery<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'perch' ORDER BY pid", [database]);
  return rows.map((r) => r.pid);
}

function logged(server: RunningServer, msg: string): Record<string, unknown> | undefined {
  for (const line of server.logs) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as Record<string, unknown>;
    if (entry.msg === msg) return entry;
  }
  return undefined;
}

describe('conformance: database connections opened at start (PostgreSQL)', function () {
  this.timeout(60000);
  const db = useTestDatabase('perch_warm');
  let server: RunningServer | undefined;
  const alice = randomName('warm');

  before(async function () {
    if (!db.url) return;
    server = await startServer({ databaseUrl: db.url, users: { [alice]: 'pw' } });
  });
  after(async () => {
    await server?.stop();
  });

  it('holds every pooled connection before the first client, and serves it on them', async () => {
    const database = new URL(db.url).pathname.slice(1);
    const all = POSTGRES_POOL_SIZE + PLANNED_ONCE_POOL_SIZE;
    expect(logged(server!, 'database connections opened')?.connections).to.equal(all);
    const atStart = await perchBackends(database);
    expect(atStart).to.have.length(all);
    // A login and a room's archive read run on the backends already open.
    const a = await rawLogin(server!.ports.c2s, alice, 'pw');
    try {
      a.send(`<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2'/></iq>`);
      await a.waitFor(/<iq[^>]*id=['"]q1['"]/, 10000);
    } finally {
      a.close();
    }
    expect(await perchBackends(database)).to.deep.equal(atStart);
  });
});

describe('conformance: a database short of connections slows the start, never stops it (PostgreSQL)', function () {
  this.timeout(60000);
  const role = randomName('perch_warm_role_');
  const database = randomName('perch_warm_few_');
  let server: RunningServer | undefined;
  let url = '';
  const bob = randomName('warm');

  before(async function () {
    // A limit applies to a role that is not a superuser: the database's owner, allowed four connections.
    try {
      await adminQuery(`CREATE ROLE ${role} LOGIN CONNECTION LIMIT 4`);
      await adminQuery(`CREATE DATABASE ${database} OWNER ${role}`);
    } catch (e) {
      if (IN_CI) throw e;
      console.warn(`    skipping (no PostgreSQL): ${(e as Error).message}`);
      this.skip();
    }
    const u = new URL(PG_ADMIN_URL);
    u.username = role;
    u.pathname = `/${database}`;
    url = u.toString();
    server = await startServer({ databaseUrl: url, users: { [bob]: 'pw' } });
  });
  after(async () => {
    await server?.stop();
    await adminQuery(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => {});
    await adminQuery(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
  });

  it('warns that it could not open them all, then serves a login', async () => {
    expect(logged(server!, 'database connections opened')).to.equal(undefined);
    const warning = logged(server!, 'could not open every database connection at start; they open as load asks');
    expect(warning?.level).to.equal('warn');
    expect(JSON.stringify(warning?.err)).to.match(/too many connections/);
    expect((await perchBackends(database)).length).to.be.at.most(4);
    const b = await rawLogin(server!.ports.c2s, bob, 'pw');
    b.close();
  });
});
