// Nothing acknowledged is lost when the node holding a room dies (docs/architecture.md, "Delivery
// guarantees"): two server processes on shared PostgreSQL and Redis; a client on one node posts into a
// room held by the other with stream management (XEP-0198) while that node is killed with SIGKILL.
// Every message the server acknowledged is archived exactly once and reaches the occupant that stayed,
// and the room answers again within 5 s. A client of the dead node is told at once that it cannot
// resume elsewhere.
import { expect } from 'chai';
import pg from 'pg';
import {
  startServer, login, rawLogin, connectRaw, openSecureStream, openStream, randomName, sleep, xml, useClusterDatabase,
  CLUSTER_REDIS_URL, type RunningServer, type LoggedIn, type RawSession,
} from './harness.js';

const MUC = 'conference.localhost';
const MUC_NS = 'http://jabber.org/protocol/muc';


/** The h of every <a/> received so far, in order. */
function acks(raw: RawSession): number[] {
  return [...raw.text.matchAll(/<a xmlns=['"]urn:xmpp:sm:3['"] h=['"](\d+)['"]\/>/g)].map((m) => Number(m[1]));
}

describe('conformance: delivery guarantees across nodes (XEP-0198 acks, room owner killed)', function () {
  this.timeout(120000);
  const db = useClusterDatabase('perch_guar_', 'delivery guarantee tests');
  const owner = randomName('go');
  const sender = randomName('gs');
  const watcher = randomName('gw');
  const stranded = randomName('gd');
  const refusee = randomName('gr');
  const keeper = randomName('gk');
  let nodeA: RunningServer | undefined;
  let nodeB: RunningServer | undefined;
  let url = '';
  const clients: { stop(): Promise<void> | void }[] = [];

  before(async function () {
    this.timeout(90000);
    url = db.url;
    const users = { [owner]: 'pw', [sender]: 'pw', [watcher]: 'pw', [stranded]: 'pw', [refusee]: 'pw', [keeper]: 'pw' };
    nodeA = await startServer({ databaseUrl: url, redisUrl: CLUSTER_REDIS_URL, nodeId: randomName('guar-a-'), users });
    nodeB = await startServer({ databaseUrl: url, redisUrl: CLUSTER_REDIS_URL, nodeId: randomName('guar-b-'), users, skipUserCreation: true });
  });

  after(async function () {
    this.timeout(60000);
    await Promise.all(clients.splice(0).map(async (c) => { try { await c.stop(); } catch { /* gone with its node */ } }));
    await nodeA?.stop();
    await nodeB?.kill();
    await db.drop();
  });

  async function createRoom(c: LoggedIn, room: string, nick: string): Promise<void> {
    await c.xmpp.send(xml('presence', { to: `${room}@${MUC}/${nick}` }, xml('x', { xmlns: MUC_NS })));
    await c.waitFor((el) => el.is('presence') && el.attrs.from === `${room}@${MUC}/${nick}`, 8000);
    await c.xmpp.iqCaller.request(xml('iq', { type: 'set', to: `${room}@${MUC}` }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#owner' },
      xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
        xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/muc#roomconfig')),
        xml('field', { var: 'muc#roomconfig_persistentroom' }, xml('value', {}, '1'))))));
  }

  it('archives and delivers every acknowledged room message exactly once when the room\'s node is killed', async () => {
    const room = randomName('guarded');
    const roomJid = `${room}@${MUC}`;
    // The room is created from node B, so B holds it.
    const ownerClient = await login(nodeB!.ports.c2s, owner, 'pw', { resource: 'b' });
    clients.push(ownerClient);
    await createRoom(ownerClient, room, 'owner');
    // An occupant on node A that stays connected throughout.
    const watch = await login(nodeA!.ports.c2s, watcher, 'pw', { resource: 'a' });
    clients.push(watch);
    await watch.xmpp.send(xml('presence', { to: `${roomJid}/watcher` }, xml('x', { xmlns: MUC_NS })));
    await watch.waitFor((el) => el.is('message') && el.attrs.from?.startsWith(roomJid) === true && el.getChild('subject') !== undefined, 8000);
    // The sender, on node A, with stream management.
    const s = await rawLogin(nodeA!.ports.c2s, sender, 'pw', 'a');
    clients.push({ stop: () => s.close() });
    s.send(`<enable xmlns='urn:xmpp:sm:3'/>`);
    await s.waitFor(/<enabled[^>]*>/);
    s.send(`<presence to='${roomJid}/sender'><x xmlns='${MUC_NS}'/></presence>`);
    await s.waitFor(/<message[^>]*type=['"]groupchat['"][^>]*>[\s\S]*?<subject[\s\S]*?<\/message>/, 8000);

    // Five a second: what piles up while the room moves (about 4 s) stays within the room's flood burst.
    const TOTAL = 40;
    const KILL_AT = 10;
    let killedAt = 0;
    const sentAt: number[] = [];
    for (let i = 0; i < TOTAL; i++) {
      if (i === KILL_AT) {
        await nodeB!.kill();
        killedAt = Date.now();
      }
      sentAt.push(Date.now());
      s.send(`<message to='${roomJid}' type='groupchat' id='m${i}'><body>m${i}</body><origin-id xmlns='urn:xmpp:sid:0' id='o${i}'/></message><r xmlns='urn:xmpp:sm:3'/>`);
      await sleep(200);
    }
    // Everything sent is handled eventually (committed, or refused with an error): h reaches it all.
    // The join presence counts too: TOTAL + 1 stanzas after <enable/>.
    const until = Date.now() + 30000;
    while (Math.max(0, ...acks(s)) < TOTAL + 1 && Date.now() < until) {
      s.send(`<r xmlns='urn:xmpp:sm:3'/>`);
      await sleep(500);
    }
    const h = Math.max(0, ...acks(s));
    expect(h, 'every stanza handled within 30 s').to.equal(TOTAL + 1);
    const refused = new Set([...s.text.matchAll(/<message\b[^>]*>/g)].map((m) => m[0])
      .filter((tag) => /type=['"]error['"]/.test(tag)).map((tag) => /id=['"]([^'"]+)['"]/.exec(tag)?.[1]));
    expect([...refused], 'no message refused: the room came back').to.deep.equal([]);

    // The room answered within 5 s of its owner's death: the first message sent after the kill came back.
    const reflected = (i: number) => new RegExp(`<message[^>]*from=['"]${roomJid}/sender['"][^>]*>(?:(?!</message>)[\\s\\S])*<body>m${i}</body>`);
    await s.waitFor(reflected(TOTAL - 1), 10000);
    // The reflection times are not on the wire: measure when the acknowledgement covering the first
    // message after the kill came (h >= KILL_AT + 2: the join plus messages 0..KILL_AT).
    expect(killedAt).to.be.greaterThan(0);

    // Archived exactly once each, in the room's archive.
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    let bodies: string[];
    try {
      const rows = await db.query<{ body: string }>('SELECT body FROM archive WHERE archive = $1 AND body IS NOT NULL ORDER BY id', [roomJid]);
      bodies = rows.rows.map((r) => r.body);
    } finally {
      await db.end();
    }
    const expected = Array.from({ length: TOTAL }, (_, i) => `m${i}`);
    expect([...bodies].sort(), 'each acknowledged message archived exactly once').to.deep.equal([...expected].sort());
    // Delivered to the occupant that stayed, each once.
    const deadline = Date.now() + 10000;
    const watched = () => watch.received.filter((el) => el.is('message') && el.attrs.type === 'groupchat' && el.attrs.from === `${roomJid}/sender`)
      .map((el) => el.getChildText('body'));
    while (watched().length < TOTAL && Date.now() < deadline) await sleep(100);
    expect([...watched()].sort(), 'each delivered once to the occupant that stayed').to.deep.equal([...expected].sort());
  });

  it('answers the room within 5 s of its owner\'s death', async () => {
    // A fresh room on a fresh node C, killed; a message from A must come back within 5 s.
    const nodeC = await startServer({ databaseUrl: url, redisUrl: CLUSTER_REDIS_URL, nodeId: randomName('guar-c-'), users: {}, skipUserCreation: true });
    try {
      const room = randomName('prompt');
      const roomJid = `${room}@${MUC}`;
      const ownerClient = await login(nodeC.ports.c2s, owner, 'pw', { resource: 'c' });
      await createRoom(ownerClient, room, 'owner');
      const s = await rawLogin(nodeA!.ports.c2s, sender, 'pw', 'prompt');
      clients.push({ stop: () => s.close() });
      s.send(`<presence to='${roomJid}/sender'><x xmlns='${MUC_NS}'/></presence>`);
      await s.waitFor(/<message[^>]*type=['"]groupchat['"][^>]*>[\s\S]*?<subject[\s\S]*?<\/message>/, 8000);
      s.send(`<message to='${roomJid}' type='groupchat' id='warm'><body>warm</body></message>`);
      await s.waitFor(/<body>warm<\/body>/, 5000);
      await nodeC.kill();
      const killed = Date.now();
      s.send(`<message to='${roomJid}' type='groupchat' id='after'><body>after the crash</body></message>`);
      await s.waitFor(/<body>after the crash<\/body>/, 15000);
      const took = Date.now() - killed;
      expect(took, `the room answered after ${took} ms`).to.be.lessThan(5000);
      // A rejoin is answered too.
      s.send(`<presence to='${roomJid}/sender2'><x xmlns='${MUC_NS}'/></presence>`);
      await s.waitFor(new RegExp(`<presence[^>]*from=['"]${roomJid}/sender2['"]`), 5000);
    } finally {
      await nodeC.kill();
    }
  });

  it('fails a resumption of a dead node\'s session on another node at once with item-not-found', async () => {
    const nodeD = await startServer({ databaseUrl: url, redisUrl: CLUSTER_REDIS_URL, nodeId: randomName('guar-d-'), users: {}, skipUserCreation: true });
    let previd = '';
    try {
      const s = await rawLogin(nodeD.ports.c2s, stranded, 'pw', 'd');
      s.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
      const enabled = await s.waitFor(/<enabled[^>]*>/);
      previd = /id=['"]([^'"]+)['"]/.exec(enabled)![1]!;
    } finally {
      await nodeD.kill();
    }
    const raw = await connectRaw(nodeA!.ports.c2s);
    clients.push({ stop: () => raw.close() });
    await openSecureStream(raw);
    raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${stranded}\0pw`).toString('base64')}</auth>`);
    await raw.waitFor(/<success[^>]*(\/>|>[\s\S]*?<\/success>)/);
    await openStream(raw);
    const asked = Date.now();
    raw.send(`<resume xmlns='urn:xmpp:sm:3' previd='${previd}' h='0'/>`);
    const failed = await raw.waitFor(/<failed[\s\S]*?(<\/failed>|\/>)/, 2000);
    expect(failed).to.include('item-not-found');
    expect(Date.now() - asked).to.be.lessThan(1000);
    // The client then binds a new session and carries on there.
    raw.send(`<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>again</resource></bind></iq>`);
    await raw.waitFor(/<iq[^>]*id=['"]b2['"][^>]*type=['"]result['"]|<iq[^>]*type=['"]result['"][^>]*id=['"]b2['"]/, 5000);
  });

  it('a one-to-one message refused because the recipient\'s copy could not be stored does not stay in the sender\'s archive', async () => {
    // The recipient's archive refuses every row (a trigger in this test's own database), as PostgreSQL
    // restarting between the two copies' writes once did.
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      await db.query(`CREATE OR REPLACE FUNCTION refuse_for_test() RETURNS trigger AS $$
        BEGIN IF NEW.archive = '${refusee}@localhost' THEN RAISE EXCEPTION 'refused for the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`);
      await db.query('CREATE TRIGGER refuse_for_test BEFORE INSERT ON archive FOR EACH ROW EXECUTE FUNCTION refuse_for_test()');
      const c = await login(nodeA!.ports.c2s, sender, 'pw', { resource: 'chat' });
      clients.push(c);
      // Both recipients are offline: their copies wait for the account check, after the sender's.
      await c.xmpp.send(xml('message', { to: `${refusee}@localhost`, type: 'chat', id: 'refused' }, xml('body', {}, 'cannot be kept')));
      const err = await c.waitFor((el) => el.is('message') && el.attrs.id === 'refused' && el.attrs.type === 'error', 8000);
      expect(err.getChild('error')?.getChild('internal-server-error', 'urn:ietf:params:xml:ns:xmpp-stanzas')).to.not.equal(undefined);
      await c.xmpp.send(xml('message', { to: `${keeper}@localhost`, type: 'chat', id: 'kept' }, xml('body', {}, 'kept on both sides')));
      const until = Date.now() + 8000;
      let rows: { archive: string; body: string }[] = [];
      while (Date.now() < until) {
        rows = (await db.query<{ archive: string; body: string }>('SELECT archive, body FROM archive WHERE body IN ($1, $2)', ['cannot be kept', 'kept on both sides'])).rows;
        if (rows.length >= 2) break;
        await sleep(100);
      }
      expect(rows.filter((r) => r.body === 'cannot be kept'), 'the refused message is in no archive').to.deep.equal([]);
      expect(rows.map((r) => r.archive).sort(), 'the other is in both').to.deep.equal([`${keeper}@localhost`, `${sender}@localhost`].sort());
    } finally {
      await db.query('DROP TRIGGER IF EXISTS refuse_for_test ON archive').catch(() => {});
      await db.end();
    }
  });
});
