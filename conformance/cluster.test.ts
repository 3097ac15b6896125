// Two server processes sharing real PostgreSQL and Redis: routing, presence and session conflicts
// across nodes. Needs the services; under CI their absence fails the suite, locally it skips.
import { expect } from 'chai';
import {
  startServer, login, randomName, sleep, xml, CLUSTER_REDIS_URL, useClusterDatabase,
  type RunningServer, type LoggedIn,
} from './harness.js';

const REDIS_URL = CLUSTER_REDIS_URL;



describe('conformance: cluster (PostgreSQL + Redis)', function () {
  this.timeout(30000);
  const db = useClusterDatabase('perch_conf_', 'cluster conformance tests');
  const alice = randomName('ca');
  const bob = randomName('cb');
  const carol = randomName('cc');
  const dave = randomName('cd');
  let nodeA: RunningServer | undefined;
  let nodeB: RunningServer | undefined;
  const clients: LoggedIn[] = [];

  before(async function () {
    this.timeout(90000);
    const url = db.url;
    const users = { [alice]: 'pw', [bob]: 'pw', [carol]: 'pw', [dave]: 'pw' };
    nodeA = await startServer({ databaseUrl: url, redisUrl: REDIS_URL, nodeId: randomName('conf-a-'), users });
    // The users are in the shared database already; node B only connects to it.
    nodeB = await startServer({ databaseUrl: url, redisUrl: REDIS_URL, nodeId: randomName('conf-b-'), users, skipUserCreation: true });
    dbUrl = url;
  });
  let dbUrl = '';

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop()));
  });

  after(async function () {
    this.timeout(60000);
    await nodeA?.stop();
    await nodeB?.stop();
    await db.drop();
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

  it('archives a message from node A by the recipient\'s preferences as set on node B, each change at once', async () => {
    const MAM = 'urn:xmpp:mam:2';
    const RSM = 'http://jabber.org/protocol/rsm';
    const a = await on(nodeA!, dave, 'pa');
    const b = await on(nodeB!, bob, 'pb');
    await sleep(200); // session records reach the other node's mirror
    const prefs = (def: string) => b.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('prefs', { xmlns: MAM, default: def })));
    const archived = async () => {
      const fin = await b.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('query', { xmlns: MAM },
        xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
          xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, MAM)),
          xml('field', { var: 'with' }, xml('value', {}, `${dave}@localhost`))),
        xml('set', { xmlns: RSM }, xml('max', {}, '0')))));
      return Number(fin.getChild('fin', MAM)!.getChild('set', RSM)!.getChildText('count'));
    };
    const send = async (id: string) => {
      await a.xmpp.send(xml('message', { to: b.jid, type: 'chat', id }, xml('body', {}, id)));
      await b.waitFor((el) => el.is('message') && el.attrs.id === id);
    };
    // Node A holds Bob's preferences after the first message (it archives his copy), so each later
    // change must reach it: the first message kept, the second not, the third kept.
    await send('kept-1');
    expect(await archived()).to.equal(1);
    await prefs('never');
    await send('dropped');
    expect(await archived()).to.equal(1);
    await prefs('always');
    await send('kept-2');
    expect(await archived()).to.equal(2);
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

  describe('rooms across nodes', () => {
    const MUC = 'conference.localhost';
    const bodyOf = (el: { getChildText(n: string): string | null }) => el.getChildText('body');

    async function join(c: LoggedIn, room: string, nick: string): Promise<void> {
      await c.xmpp.send(xml('presence', { to: `${room}@${MUC}/${nick}` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' },
        xml('history', { maxstanzas: '0' }))));
      await c.waitFor((el) => el.is('presence') && el.attrs.from === `${room}@${MUC}/${nick}` &&
        (el.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChildren('status') ?? []).some((st) => st.attrs.code === '110'), 8000);
      await c.waitFor((el) => el.is('message') && el.attrs.from?.startsWith(`${room}@${MUC}`) && el.getChild('subject') !== undefined, 8000);
    }

    async function createRoom(c: LoggedIn, room: string, nick: string): Promise<void> {
      await join(c, room, nick);
      await c.xmpp.iqCaller.request(xml('iq', { type: 'set', to: `${room}@${MUC}` }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#owner' },
        xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
          xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#roomconfig')),
          xml('field', { var: 'muc#roomconfig_persistentroom' }, xml('value', {}, '1'))))));
    }

    it('keeps a session that replaced one on another node in its rooms, however late that node routes the old one\'s departures', async function () {
      this.timeout(60000);
      // Node C holds an ended session's departures back 1 s (a test hook), as a loaded node would.
      const nodeC = await startServer({
        databaseUrl: dbUrl, redisUrl: REDIS_URL, nodeId: randomName('conf-c-'), skipUserCreation: true,
        env: { PERCH_TEST_DEPARTURE_DELAY_MS: '1000' },
      });
      try {
        const room = randomName('replaced');
        const owner = await on(nodeB!, alice, 'owner');
        await createRoom(owner, room, 'owner');
        const first = await on(nodeC, dave, 'dup');
        await join(first, room, 'dave');
        // The same full JID on node B: the room must see the old session leave before the new one joins.
        const second = await on(nodeB!, dave, 'dup');
        await join(second, room, 'dave');
        const joinedAt = second.received.length;
        await sleep(1500);
        const selfGone = second.received.slice(joinedAt).some((el) => el.is('presence') && el.attrs.type === 'unavailable' &&
          el.attrs.from === `${room}@${MUC}/dave`);
        expect(selfGone, 'the old session\'s departure took the new occupant out').to.equal(false);
        await second.xmpp.send(xml('message', { to: `${room}@${MUC}`, type: 'groupchat', id: 'still' }, xml('body', {}, 'still here')));
        const answer = await second.waitFor((el) => el.is('message') && el.attrs.id === 'still', 5000);
        expect(answer.attrs.type, 'the message is reflected, not refused').to.equal('groupchat');
      } finally {
        await nodeC.stop();
      }
    });

    function groupchatBodies(c: LoggedIn, room: string): string[] {
      return c.received.filter((el) => el.is('message') && el.attrs.type === 'groupchat' && el.attrs.from?.startsWith(`${room}@${MUC}/`) && bodyOf(el) !== null)
        .map((el) => bodyOf(el)!);
    }

    it('gives every occupant every message once and in one order, and archives each once', async function () {
      this.timeout(60000);
      const room = randomName('xroom');
      const a = await on(nodeA!, alice, 'r1');
      const b = await on(nodeB!, bob, 'r1');
      const c = await on(nodeB!, carol, 'r1');
      await createRoom(a, room, 'alice');
      await join(b, room, 'bob');
      await join(c, room, 'carol');
      const PER = 25;
      const senders: [LoggedIn, string][] = [[a, 'alice'], [b, 'bob'], [c, 'carol']];
      // All three send at once, so the room orders messages arriving from both nodes.
      await Promise.all(senders.map(async ([cl, nick]) => {
        for (let i = 0; i < PER; i++) await cl.xmpp.send(xml('message', { to: `${room}@${MUC}`, type: 'groupchat' }, xml('body', {}, `${nick} ${i}`)));
      }));
      const total = PER * senders.length;
      for (const [cl] of senders) {
        const until = Date.now() + 15000;
        while (groupchatBodies(cl, room).length < total && Date.now() < until) await sleep(50);
      }
      await sleep(300);
      const seen = senders.map(([cl]) => groupchatBodies(cl, room));
      for (const list of seen) {
        expect(list).to.have.length(total);
        expect(new Set(list).size).to.equal(total);
        for (const [, nick] of senders) {
          const mine = list.filter((x) => x.startsWith(`${nick} `)).map((x) => Number(x.split(' ')[1]));
          expect(mine).to.deep.equal([...Array(PER).keys()]);
        }
      }
      expect(seen[1]).to.deep.equal(seen[0]);
      expect(seen[2]).to.deep.equal(seen[0]);
      // The archive, asked from the node that does not hold the room, has each message once.
      const res = await b.xmpp.iqCaller.request(xml('iq', { type: 'set', to: `${room}@${MUC}` }, xml('query', { xmlns: 'urn:xmpp:mam:2', queryid: 'q1' },
        xml('set', { xmlns: 'http://jabber.org/protocol/rsm' }, xml('max', {}, '200')))), 15000);
      const count = res.getChild('fin', 'urn:xmpp:mam:2')?.getChild('set', 'http://jabber.org/protocol/rsm')?.getChildText('count');
      expect(Number(count)).to.equal(total);
      const archived = b.received.filter((el) => el.is('message') && el.getChild('result', 'urn:xmpp:mam:2')?.attrs.queryid === 'q1')
        .map((el) => el.getChild('result', 'urn:xmpp:mam:2')!.getChild('forwarded', 'urn:xmpp:forward:0')!.getChild('message')!.getChildText('body'));
      expect(archived).to.deep.equal(seen[0]);
    });

    it('moves a room to another node when the node holding it dies, keeping its occupants and history', async function () {
      this.timeout(90000);
      const nodeC = await startServer({ databaseUrl: dbUrl, redisUrl: REDIS_URL, nodeId: randomName('conf-c-'), users: {}, skipUserCreation: true });
      try {
        const room = randomName('moving');
        const owner = await login(nodeC.ports.c2s, dave, 'pw', { resource: 'c' });
        await createRoom(owner, room, 'dave');
        const b = await on(nodeB!, bob, 'stay');
        await join(b, room, 'bob');
        await b.xmpp.send(xml('message', { to: `${room}@${MUC}`, type: 'groupchat', id: 'before' }, xml('body', {}, 'before the crash')));
        await b.waitFor((el) => el.is('message') && el.attrs.id === 'before');
        await nodeC.kill();
        // The lease lapses (4 s); then B takes the room over.
        let accepted = false;
        const until = Date.now() + 45000;
        for (let i = 0; !accepted && Date.now() < until; i++) {
          await b.xmpp.send(xml('message', { to: `${room}@${MUC}`, type: 'groupchat', id: `after${i}` }, xml('body', {}, `after the crash ${i}`)));
          try {
            await b.waitFor((el) => el.is('message') && el.attrs.id === `after${i}` && el.attrs.type === 'groupchat', 3000);
            accepted = true;
          } catch {
            // not yet: the old holder still has the lease
          }
        }
        expect(accepted, 'the room came back on another node').to.equal(true);
        // Bob was still an occupant (no rejoin needed) and saw dave, whose node died, leave: once the
        // node is declared lost (its alive key lapses, 10 s), which may be after the room moved (4 s).
        await b.waitFor((el) => el.is('presence') && el.attrs.from === `${room}@${MUC}/dave` && el.attrs.type === 'unavailable', 20000);
        // A newcomer gets the history from before the crash.
        const c = await on(nodeA!, carol, 'late');
        await c.xmpp.send(xml('presence', { to: `${room}@${MUC}/carol` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' })));
        const hist = await c.waitFor((el) => el.is('message') && bodyOf(el) === 'before the crash', 10000);
        expect(hist.getChild('delay', 'urn:xmpp:delay')).to.not.equal(undefined);
      } finally {
        await nodeC.stop().catch(() => {});
      }
    });
  });
});
