// Two server processes sharing real PostgreSQL and Redis: one-to-one messages between nodes arrive in
// the order they were sent (RFC 6120 §10.1) with many in flight. The recipient's node holds its block
// list and archive preferences; the sender's node reads them from the store for each message, and
// those reads finish in any order. Needs the services; under CI their absence fails the suite.
import { expect } from 'chai';
import pg from 'pg';
import {
  startServer, login, randomName, sleep, xml, CLUSTER_REDIS_URL, useClusterDatabase,
  type RunningServer, type LoggedIn,
} from './harness.js';

describe('conformance: message order across nodes (PostgreSQL + Redis)', function () {
  this.timeout(60000);
  const db = useClusterDatabase('perch_order_', 'message order tests');
  const senders = [...Array(12).keys()].map(() => randomName('os'));
  const recipient = randomName('or');
  let nodeA: RunningServer | undefined;
  let nodeB: RunningServer | undefined;
  const clients: LoggedIn[] = [];

  before(async function () {
    this.timeout(90000);
    const users = Object.fromEntries([...senders, recipient].map((u) => [u, 'pw']));
    nodeA = await startServer({ databaseUrl: db.url, redisUrl: CLUSTER_REDIS_URL, nodeId: randomName('order-a-'), users, configYaml: 'workers: 1\n' });
    nodeB = await startServer({ databaseUrl: db.url, redisUrl: CLUSTER_REDIS_URL, nodeId: randomName('order-b-'), users, skipUserCreation: true, configYaml: 'workers: 1\n' });
  });

  after(async function () {
    this.timeout(60000);
    await Promise.all(clients.splice(0).map((c) => c.stop()));
    await nodeA?.stop();
    await nodeB?.stop();
    await db.drop();
  });

  it('delivers each sender\'s messages to a recipient on the other node in the order sent', async function () {
    const PER_SENDER = 200;
    const r = await login(nodeB!.ports.c2s, recipient, 'pw', { resource: 'r' });
    clients.push(r);
    await r.xmpp.send(xml('presence'));
    const from = await Promise.all(senders.map((u) => login(nodeA!.ports.c2s, u, 'pw', { resource: 's' })));
    clients.push(...from);
    await sleep(300); // the recipient's session and presence reach node A's mirror
    const to = `${recipient}@localhost`;
    // The reads node A makes per message wait behind a lock, then finish together, in any order.
    const lock = new pg.Client({ connectionString: db.url });
    await lock.connect();
    await lock.query('BEGIN');
    await lock.query('LOCK TABLE user_data IN ACCESS EXCLUSIVE MODE');
    // All sent at once: hundreds in flight per sender (a bare JID: the recipient's hooks run on A).
    await Promise.all(from.map(async (c, s) => {
      for (let i = 0; i < PER_SENDER; i++) {
        void c.xmpp.send(xml('message', { to, type: 'chat', id: `o${s}-${i}` }, xml('body', {}, `${s} ${i}`)));
      }
    }));
    await sleep(1000);
    await lock.query('COMMIT');
    await lock.end();
    const seen = senders.map(() => [] as number[]);
    const until = Date.now() + 40000;
    const count = () => seen.reduce((n, l) => n + l.length, 0);
    while (count() < senders.length * PER_SENDER && Date.now() < until) {
      for (const s of seen) s.length = 0;
      for (const el of r.received) {
        if (!el.is('message') || el.attrs.type !== 'chat') continue;
        const [s, i] = (el.getChildText('body') ?? '').split(' ').map(Number);
        seen[s!]!.push(i!);
      }
      await sleep(200);
    }
    for (const [s, got] of seen.entries()) {
      expect(got.length, `sender ${s}: delivered`).to.equal(PER_SENDER);
      const outOfOrder = got.filter((n, k) => k > 0 && n < got[k - 1]!).length;
      expect(outOfOrder, `sender ${s}: out of order`).to.equal(0);
    }
  });
});
