// A one-to-one message still being handled when its session ended (the node found its sessions
// removed after a Redis cut and reset them), sent again by the client from a new session after its
// resumption failed, same origin-id. The first copy was waiting for the recipient's archive
// preferences, so it was not yet in the sender's archive nor in the writer's queue: the check for a
// resend found nothing and both copies were archived twice. The check now waits for what the ended
// session was still handling (docs/architecture.md, "Delivery guarantees").
import { expect } from 'chai';
import { parseJid } from '../protocol/jid.js';
import { NS } from '../protocol/namespaces.js';
import type { Element } from '../protocol/xml.js';
import { parseStanzaString } from '../protocol/xml-stream.js';
import { addUser } from '../src/accounts.js';
import { ClientSession } from '../src/c2s.js';
import type { ServerCore } from '../src/server.js';
import type { Transport } from '../src/transport/transport.js';
import { startUnitServer } from './unit-server.js';

/** A connection that keeps what the server writes to it. */
function connection(): Transport & { out: string[] } {
  const out: string[] = [];
  return {
    out, remoteAddress: '127.0.0.1', secure: true, lastActivity: Date.now(), isClosing: false,
    setHandler() {}, openStream() {}, sendFeatures() {}, restartStream() {}, closeStream() {}, streamError() {}, destroy() {},
    write(xml: string) { out.push(xml); },
    send(el: Element) { out.push(el.toString()); },
  };
}

const stanza = (xml: string): Element => parseStanzaString(xml)!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a one-to-one message sent again while its ended session still handles it', function () {
  this.timeout(60000);
  let server: ServerCore;
  let stop: () => Promise<void>;

  before(async () => {
    ({ server, stop } = await startUnitServer('perch-resend-'));
    await addUser(server.stores, 'localhost', 'alice', 'pw', 4096);
    await addUser(server.stores, 'localhost', 'bob', 'pw', 4096);
  });
  after(async () => {
    await stop();
  });

  async function session(resource: string, afterFailedResume: boolean) {
    const conn = connection();
    const s = new ClientSession(server, conn, parseJid(`alice@localhost/${resource}`), 'alice', afterFailedResume);
    await server.bindSession(s);
    s.fromClient(stanza(`<enable xmlns='${NS.sm}' resume='true'/>`));
    return { s, conn };
  }

  it('is archived once: the resend waits for the first copy', async () => {
    // bob has no session: his archive preferences are read, slowly, before his copy is queued.
    const userData = server.stores.userData;
    const list = userData.list.bind(userData);
    let slowed = 0;
    userData.list = async (user, kind) => {
      if (user === 'bob') { slowed++; await sleep(400); }
      return list(user, kind);
    };
    try {
      const message = `<message to='bob@localhost' type='chat' id='m1'><body>once</body><origin-id xmlns='${NS.sid}' id='resent-1'/></message>`;
      const first = await session('desk', false);
      first.s.fromClient(stanza(message));
      // Its node reset the session before the <a/> that would count it.
      first.s.end('reset');
      const again = await session('desk2', true);
      again.s.fromClient(stanza(message));
      again.s.fromClient(stanza(`<r xmlns='${NS.sm}'/>`));
      const deadline = Date.now() + 5000;
      while (!again.conn.out.some((x) => x.includes(`h='1'`)) && Date.now() < deadline) await sleep(20);
      expect(again.conn.out.some((x) => x.includes(`h='1'`)), 'the resend is acknowledged').to.equal(true);
      await sleep(200);
      expect(slowed, 'the recipient\'s preferences were read slowly').to.be.greaterThan(0);
      const bobs = (await server.stores.archive.lastN('bob@localhost', 10)).filter((m) => m.stanza.includes('resent-1'));
      const alices = (await server.stores.archive.lastN('alice@localhost', 10)).filter((m) => m.stanza.includes('resent-1'));
      expect(bobs, 'the recipient\'s archive holds it once').to.have.length(1);
      expect(alices, 'the sender\'s archive holds it once').to.have.length(1);
      await server.unbindSession(again.s, 'test over', []);
    } finally {
      userData.list = list;
    }
  });
});
