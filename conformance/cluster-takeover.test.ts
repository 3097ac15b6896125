// Two server processes sharing real PostgreSQL and Redis: a room moves to another node while
// messages forwarded to its old holder are being committed (the holder stopped, SIGSTOP, past its lease). The new holder sends them again (it never
// heard they were confirmed) with the stanza ids the forwarding node proposed, after it loaded the
// room's recent messages but before the old holder's commit landed: the archive holds each once, every
// occupant gets each once, and the sender hears no error. Needs the services; under CI their absence
// fails the suite.
import { expect } from 'chai';
import pg from 'pg';
import { Redis } from 'ioredis';
import {
  startServer, login, randomName, sleep, xml, CLUSTER_REDIS_URL, useClusterDatabase,
  type RunningServer, type LoggedIn,
} from './harness.js';

const MUC = 'conference.localhost';
const MUC_NS = 'http://jabber.org/protocol/muc';

describe('conformance: a room taken over with messages in flight (PostgreSQL + Redis)', function () {
  this.timeout(60000);
  const db = useClusterDatabase('perch_takeover_', 'room takeover tests');
  const owner = randomName('to');
  const sender = randomName('ts');
  const listener = randomName('tl');
  const nodeIdA = randomName('takeover-a-');
  const nodeIdB = randomName('takeover-b-');
  let nodeA: RunningServer | undefined;
  let nodeB: RunningServer | undefined;
  const clients: LoggedIn[] = [];

  before(async function () {
    this.timeout(90000);
    const users = { [owner]: 'pw', [sender]: 'pw', [listener]: 'pw' };
    nodeA = await startServer({ databaseUrl: db.url, redisUrl: CLUSTER_REDIS_URL, nodeId: nodeIdA, users, configYaml: 'workers: 1\n' });
    nodeB = await startServer({ databaseUrl: db.url, redisUrl: CLUSTER_REDIS_URL, nodeId: nodeIdB, users, skipUserCreation: true, configYaml: 'workers: 1\n' });
  });

  after(async function () {
    this.timeout(60000);
    await Promise.all(clients.splice(0).map((c) => c.stop()));
    await nodeA?.stop();
    await nodeB?.stop();
    await db.drop();
  });

  async function on(node: RunningServer, user: string): Promise<LoggedIn> {
    const c = await login(node.ports.c2s, user, 'pw', { resource: 'r' });
    clients.push(c);
    return c;
  }

  async function join(c: LoggedIn, room: string, nick: string): Promise<void> {
    await c.xmpp.send(xml('presence', { to: `${room}@${MUC}/${nick}` }, xml('x', { xmlns: MUC_NS }, xml('history', { maxstanzas: '0' }))));
    await c.waitFor((el) => el.is('message') && el.attrs.from?.startsWith(`${room}@${MUC}`) && el.getChild('subject') !== undefined, 8000);
  }

  it('answers the resends of messages the old holder committed as successes, and delivers and archives each once', async function () {
    const room = randomName('tk');
    const o = await on(nodeA!, owner);
    await join(o, room, 'owner');
    await o.xmpp.iqCaller.request(xml('iq', { type: 'set', to: `${room}@${MUC}` }, xml('query', { xmlns: `${MUC_NS}#owner` },
      xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
        xml('field', { var: 'FORM_TYPE' }, xml('value', {}, `${MUC_NS}#roomconfig`)),
        xml('field', { var: 'muc#roomconfig_persistentroom' }, xml('value', {}, '1'))))));
    const s = await on(nodeB!, sender);
    const l = await on(nodeB!, listener);
    await join(s, room, 'sender');
    await join(l, room, 'listener');

    const redis = new Redis(CLUSTER_REDIS_URL);
    const lease = `perch:lease:muc:${MUC}:${room}`;
    expect(await redis.get(lease)).to.equal(nodeIdA);
    // The archive takes no rows until released (reads go on): node A's commits stay in flight.
    const lock = new pg.Client({ connectionString: db.url });
    let stopped = false;
    await lock.connect();
    try {
      await lock.query('BEGIN');
      await lock.query('LOCK TABLE archive IN EXCLUSIVE MODE');
      const N = 10;
      for (let i = 0; i < N; i++) {
        await s.xmpp.send(xml('message', { to: `${room}@${MUC}`, type: 'groupchat', id: `tk${i}` }, xml('body', {}, `tk ${i}`)));
      }
      await sleep(500); // forwarded to A, which holds them for its commit
      // A stops renewing (as when its renewals came late): its lease lapses, B takes the room and sends
      // what A never confirmed. A's INSERT is in PostgreSQL already, waiting on the lock.
      nodeA!.process.kill('SIGSTOP');
      stopped = true;
      const until = Date.now() + 15000;
      while ((await redis.get(lease)) !== nodeIdB && Date.now() < until) await sleep(100);
      expect(await redis.get(lease)).to.equal(nodeIdB);
      await sleep(1000); // B admitted them again; its commits wait behind the lock too
      await lock.query('COMMIT');
      await sleep(300); // A's commit lands first; B's, the same message, is refused by the archive
      nodeA!.process.kill('SIGCONT');
      stopped = false;

      const bodies = (c: LoggedIn) => c.received.filter((el) => el.is('message') && el.attrs.type === 'groupchat' && el.getChildText('body')?.startsWith('tk '))
        .map((el) => el.getChildText('body'));
      const wait = Date.now() + 15000;
      while ((bodies(l).length < N || bodies(s).length < N) && Date.now() < wait) await sleep(100);
      await sleep(1500); // anything sent twice, or an error, would have come by now
      const errors = s.received.filter((el) => el.is('message') && el.attrs.type === 'error').map(String);
      expect(errors, 'errors to the sender').to.deep.equal([]);
      const expected = [...Array(N).keys()].map((i) => `tk ${i}`);
      // Each once. Not necessarily in order: what the stopped holder committed it fans out when it runs
      // again, after the new holder fanned out the rest (see docs/architecture.md, "Duplicates").
      expect([...bodies(l)].sort(), 'the listener').to.deep.equal(expected);
      expect([...bodies(s)].sort(), 'the sender\'s reflections').to.deep.equal(expected);
      const rows = await lock.query<{ n: string }>("SELECT count(*) AS n FROM archive WHERE archive = $1 AND body LIKE 'tk %'", [`${room}@${MUC}`]);
      expect(Number(rows.rows[0]!.n)).to.equal(N);
    } finally {
      if (stopped) nodeA!.process.kill('SIGCONT');
      await lock.end();
      redis.disconnect();
    }
  });
});
