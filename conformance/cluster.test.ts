// Two server processes sharing real PostgreSQL and Redis: routing, presence and session conflicts
// across nodes. Needs the services; under CI their absence fails the suite, locally it skips.
import { expect } from 'chai';
import pg from 'pg';
import { Redis } from 'ioredis';
import {
  startServer, login, randomName, sleep, xml, IN_CI,
  type RunningServer, type LoggedIn,
} from './harness.js';

const PG_ADMIN_URL = process.env.CONFORMANCE_PG_URL ?? 'postgres://root@127.0.0.1:5432/test';
const REDIS_URL = process.env.CONFORMANCE_REDIS_URL ?? 'redis://127.0.0.1:6379';

async function servicesAvailable(): Promise<string | null> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (e) {
    return `PostgreSQL at ${PG_ADMIN_URL}: ${(e as Error).message}`;
  } finally {
    await client.end().catch(() => {});
  }
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 3000 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (e) {
    return `Redis at ${REDIS_URL}: ${(e as Error).message}`;
  } finally {
    redis.disconnect();
  }
  return null;
}

function databaseUrl(name: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

describe('conformance: cluster (PostgreSQL + Redis)', function () {
  this.timeout(30000);
  const dbName = randomName('perch_conf_');
  const alice = randomName('ca');
  const bob = randomName('cb');
  const carol = randomName('cc');
  let nodeA: RunningServer | undefined;
  let nodeB: RunningServer | undefined;
  let created = false;
  const clients: LoggedIn[] = [];

  before(async function () {
    this.timeout(90000);
    const missing = await servicesAvailable();
    if (missing) {
      if (IN_CI) throw new Error(`cluster conformance needs PostgreSQL and Redis (CI=true): ${missing}`);
      console.warn(`    skipping the cluster conformance tests: ${missing}`);
      this.skip();
    }
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${dbName}`);
      created = true;
    } finally {
      await admin.end();
    }
    const url = databaseUrl(dbName);
    const users = { [alice]: 'pw', [bob]: 'pw', [carol]: 'pw' };
    nodeA = await startServer({ databaseUrl: url, redisUrl: REDIS_URL, nodeId: randomName('conf-a-'), users });
    // The users are in the shared database already; node B only connects to it.
    nodeB = await startServer({ databaseUrl: url, redisUrl: REDIS_URL, nodeId: randomName('conf-b-'), users, skipUserCreation: true });
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop()));
  });

  after(async function () {
    this.timeout(60000);
    await nodeA?.stop();
    await nodeB?.stop();
    if (created) {
      const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    }
  });

  async function on(node: RunningServer, user: string, resource?: string): Promise<LoggedIn> {
    const c = await login(node.ports.c2s, user, 'pw', resource === undefined ? {} : { resource });
    clients.push(c);
    return c;
  }

  it('both nodes report PostgreSQL and Redis', () => {
    for (const n of [nodeA!, nodeB!]) {
      const started = n.logs.find((l) => l.includes('"msg":"perch started"'))!;
      expect(started).to.include('"database":"postgres"');
      expect(started).to.include('"sessions":"redis"');
    }
  });

  it('routes a chat message to a full JID on the other node, both ways', async () => {
    const a = await on(nodeA!, alice, 'a1');
    const b = await on(nodeB!, bob, 'b1');
    await sleep(200); // session records reach the other node's mirror
    await a.xmpp.send(xml('message', { to: b.jid, type: 'chat', id: 'x1' }, xml('body', {}, 'hello from A')));
    const m1 = await b.waitFor((el) => el.is('message') && el.attrs.id === 'x1');
    expect(m1.attrs.from).to.equal(a.jid);
    expect(m1.getChildText('body')).to.equal('hello from A');
    await b.xmpp.send(xml('message', { to: a.jid, type: 'chat', id: 'x2' }, xml('body', {}, 'hello from B')));
    const m2 = await a.waitFor((el) => el.is('message') && el.attrs.id === 'x2');
    expect(m2.attrs.from).to.equal(b.jid);
  });

  it('delivers a bare-JID chat and presence across nodes after a mutual subscription', async () => {
    const a = await on(nodeA!, alice, 'p1');
    const b = await on(nodeB!, carol, 'p2');
    // Roster first: subscription approvals go to interested resources only (RFC 6121 §3.1.6).
    for (const c of [a, b]) await c.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: 'jabber:iq:roster' })));
    await a.xmpp.send(xml('presence'));
    await b.xmpp.send(xml('presence'));
    await a.xmpp.send(xml('presence', { to: `${carol}@localhost`, type: 'subscribe' }));
    await b.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribe');
    await b.xmpp.send(xml('presence', { to: `${alice}@localhost`, type: 'subscribed' }));
    await b.xmpp.send(xml('presence', { to: `${alice}@localhost`, type: 'subscribe' }));
    await a.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribe');
    await a.xmpp.send(xml('presence', { to: `${carol}@localhost`, type: 'subscribed' }));
    await a.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribed' && el.attrs.from === `${carol}@localhost`, 8000);
    await b.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribed' && el.attrs.from === `${alice}@localhost`, 8000);
    await a.waitFor((el) => el.is('presence') && el.attrs.from === b.jid && el.attrs.type === undefined, 8000);
    await b.waitFor((el) => el.is('presence') && el.attrs.from === a.jid && el.attrs.type === undefined, 8000);
    await a.xmpp.send(xml('message', { to: `${carol}@localhost`, type: 'chat', id: 'bare1' }, xml('body', {}, 'to bare')));
    const m = await b.waitFor((el) => el.is('message') && el.attrs.id === 'bare1');
    expect(m.attrs.from).to.equal(a.jid);
    await b.stop();
    await a.waitFor((el) => el.is('presence') && el.attrs.from === b.jid && el.attrs.type === 'unavailable', 8000);
  });

  it('replaces a session on node A when the same full JID logs in on node B (A gets conflict)', async () => {
    const first = await on(nodeA!, bob, 'dup');
    const second = await on(nodeB!, bob, 'dup');
    expect(second.jid).to.equal(`${bob}@localhost/dup`);
    await Promise.race([first.disconnected, sleep(8000).then(() => { throw new Error('the session on node A was not replaced'); })]);
    expect(first.errors).to.include('conflict');
    // The new session works.
    const c = await on(nodeA!, alice, 'check');
    await sleep(200);
    await c.xmpp.send(xml('message', { to: second.jid, type: 'chat', id: 'after' }, xml('body', {}, 'still there?')));
    await second.waitFor((el) => el.is('message') && el.attrs.id === 'after');
  });
});
