// A planned close (server.stop(), SIGTERM) asks the client what it received (<r/>) before the last
// <a/>; what it does not confirm is stored offline and comes again at its next login. A message
// written to the client after that <r/> reached it without being counted, so it came twice: live,
// then from offline storage (the rolling-restart fault). Two server processes on shared PostgreSQL and
// Redis: messages from node B flow to a client of node A while A stops, the client answering the <r/>
// with a delay (as over a slow network); then it logs in on B and no message has come twice.
import { expect } from 'chai';
import {
  startServer, rawLogin, randomName, sleep, CLUSTER_REDIS_URL, useClusterDatabase,
  type RunningServer, type RawSession,
} from './harness.js';

const SM = 'urn:xmpp:sm:3';


/** Tokens of the test messages in a received text, with repetitions. */
function tokens(text: string): string[] {
  return [...text.matchAll(/<body>P ([a-z0-9_]+)<\/body>/g)].map((m) => m[1]!);
}

/** Stanzas in a received text (what the client counts for h). */
function stanzaCount(text: string): number {
  return (text.match(/<(message|presence|iq)[\s>]/g) ?? []).length;
}

describe('conformance: a planned close confirms what the client received', function () {
  this.timeout(120000);
  const db = useClusterDatabase('perch_close_', 'planned close tests');
  const sender = randomName('ps');
  const recipient = randomName('pr');
  let nodeA: RunningServer | undefined;
  let nodeB: RunningServer | undefined;
  const open: RawSession[] = [];

  before(async function () {
    this.timeout(90000);
    const url = db.url;
    const users = { [sender]: 'pw', [recipient]: 'pw' };
    nodeA = await startServer({ databaseUrl: url, redisUrl: CLUSTER_REDIS_URL, nodeId: randomName('close-a-'), users });
    nodeB = await startServer({ databaseUrl: url, redisUrl: CLUSTER_REDIS_URL, nodeId: randomName('close-b-'), users, skipUserCreation: true });
  });

  after(async function () {
    this.timeout(60000);
    for (const s of open.splice(0)) s.close();
    await nodeA?.kill();
    await nodeB?.kill();
    await db.drop();
  });

  it('no message reaches the client twice (live before the close, then from offline storage)', async () => {
    const bob = await rawLogin(nodeA!.ports.c2s, recipient, 'pw', 'desk');
    open.push(bob);
    bob.send(`<enable xmlns='${SM}' resume='true'/>`);
    await bob.waitFor(/<enabled[^>]*>/);
    // Answers each <r/> with what came before it, 400 ms later (a client behind a slow link).
    let answered = 0;
    const acker = setInterval(() => {
      const text = bob.text;
      const from = text.indexOf('<enabled');
      const requests = [...text.slice(from).matchAll(/<r xmlns=['"]urn:xmpp:sm:3['"]\/>/g)];
      for (const r of requests.slice(answered)) {
        const h = stanzaCount(text.slice(from, from + r.index!));
        setTimeout(() => bob.send(`<a xmlns='${SM}' h='${h}'/>`), 400);
      }
      answered = requests.length;
    }, 20);

    const alice = await rawLogin(nodeB!.ports.c2s, sender, 'pw', 'phone');
    open.push(alice);
    let n = 0;
    const sending = setInterval(() => {
      const t = `m${++n}`;
      alice.send(`<message to='${recipient}@localhost/desk' type='chat' id='${t}'><body>P ${t}</body></message>`);
    }, 20);
    try {
      await sleep(500);
      await nodeA!.stop();
      nodeA = undefined;
      await sleep(300);
    } finally {
      clearInterval(sending);
      clearInterval(acker);
    }
    const live = tokens(bob.text);
    expect(live.length, 'messages reached the client before the close').to.be.greaterThan(0);

    // Logs in anew on the other node: what was not confirmed comes from offline storage.
    const again = await rawLogin(nodeB!.ports.c2s, recipient, 'pw', 'desk');
    open.push(again);
    again.send('<presence/>');
    await sleep(1500);
    const later = tokens(again.text);
    const twice = later.filter((t) => live.includes(t));
    expect(twice, `received live and again after the new login (${live.length} live, ${later.length} later)`).to.deep.equal([]);
  });
});
