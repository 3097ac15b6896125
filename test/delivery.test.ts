// Local delivery on an in-process server: a stanza serialised once (a room's fan-out, a stanza from another
// node) is written to each local session as that same string, while blocking (XEP-0191) and CSI (XEP-0352)
// still decide what reaches the session.
import { expect } from 'chai';
import { parseJid } from '../protocol/jid.js';
import { NS } from '../protocol/namespaces.js';
import { Element } from '../protocol/xml.js';
import { parseStanzaString } from '../protocol/xml-stream.js';
import { addUser } from '../src/accounts.js';
import type { ClientSession } from '../src/c2s.js';
import type { ServerCore } from '../src/server.js';
import type { SessionRecord } from '../storage/types.js';
import { startUnitServer } from './unit-server.js';

/** What a session was given, in order: `raw` for a ready string (sendRaw), `element` for send(Element). */
interface Written { via: 'raw' | 'element'; xml: string }

/** A bound session without a socket that records what the server writes to it. */
function recordingSession(server: ServerCore, full: string) {
  const jid = parseJid(full);
  const written: Written[] = [];
  const record: SessionRecord = {
    jid: full, node: server.sessions.nodeId, priority: 0, available: true, presence: null, interested: true, carbons: false, since: Date.now(),
  };
  const session = {
    jid, username: jid.local, full, bare: jid.bareString(), ip: '127.0.0.1', secure: true, record,
    data: new Map<string, unknown>(), closed: false,
    async updateRecord(change: Partial<SessionRecord>) { Object.assign(record, change); },
    send(stanza: Element) { written.push({ via: 'element', xml: stanza.toString() }); },
    sendRaw(xml: string) { written.push({ via: 'raw', xml }); },
    close() {}, end() {}, replaced() {},
  };
  return { session: session as unknown as ClientSession, record, written };
}

const tick = () => new Promise((r) => setTimeout(r, 20));

describe('local delivery of serialised stanzas', function () {
  this.timeout(60000);
  let server: ServerCore;
  let stop: () => Promise<void>;
  const bound: ClientSession[] = [];

  before(async () => {
    ({ server, stop } = await startUnitServer('perch-delivery-'));
  });
  after(async () => {
    for (const s of bound) await server.unbindSession(s, 'test over', []);
    await stop();
  });

  const bind = async (full: string) => {
    const r = recordingSession(server, full);
    await server.bindSession(r.session);
    bound.push(r.session);
    return r;
  };
  const groupchat = (to: string, body: string) =>
    `<message to='${to}' from='room@conference.localhost/nick' type='groupchat' id='m1'><body>${body}</body></message>`;

  it('writes a pre-serialised stanza to a local session as the same string, not parsed and serialised again', async () => {
    const a = await bind('plain@localhost/r');
    const xml = groupchat('plain@localhost/r', 'fish &amp; chips');
    server.router.deliverTo(a.record, xml, 'message');
    expect(a.written).to.deep.equal([{ via: 'raw', xml }]);
    expect(a.written[0]!.xml).to.equal(xml);
  });

  it('does the same for a stanza arriving over the cluster bus', async () => {
    const a = await bind('bus@localhost/r');
    // Attribute order and quotes another serialiser could produce: written byte for byte.
    const xml = `<message type="chat" from="x@localhost/y" to="bus@localhost/r" id="c1"><body>over the bus</body></message>`;
    await server.sessions.send(server.sessions.nodeId, JSON.stringify({ t: 'd', to: a.record.jid, x: xml }));
    await tick();
    expect(a.written).to.deep.equal([{ via: 'raw', xml }]);
  });

  it('still drops a blocked sender\'s pre-serialised message and answers it service-unavailable', async () => {
    await addUser(server.stores, 'localhost', 'blocker', 'secret', 4096);
    await server.stores.userData.put('blocker', 'blocklist', 'pest@localhost', '');
    const a = await bind('blocker@localhost/r');
    const pest = await bind('pest@localhost/r');
    const friend = `<message to='blocker@localhost/r' from='friend@localhost/r' type='chat' id='f1'><body>hello</body></message>`;
    const blocked = `<message to='blocker@localhost/r' from='pest@localhost/r' type='chat' id='p1'><body>buy now</body></message>`;
    server.router.deliverTo(a.record, blocked, 'message');
    server.router.deliverTo(a.record, friend, 'message');
    await tick();
    // An account with a block list still gets the others' stanzas untouched.
    expect(a.written).to.deep.equal([{ via: 'raw', xml: friend }]);
    const bounce = pest.written.map((w) => parseStanzaString(w.xml)!);
    expect(bounce).to.have.length(1);
    expect(bounce[0]!.attrs).to.include({ type: 'error', id: 'p1', from: 'blocker@localhost/r', to: 'pest@localhost/r' });
    expect(bounce[0]!.getChild('error')!.getChild('service-unavailable', NS.stanzaErrors)).to.not.equal(undefined);
  });

  it('keeps a blocker\'s available presence from the session it blocks, through blocking, unblocking and blocking again', async () => {
    await addUser(server.stores, 'localhost', 'shy', 'secret', 4096);
    const shy = await bind('shy@localhost/r');
    const nosy = await bind('nosy@localhost/r');
    const other = await bind('other@localhost/r');
    const presence = (to: string) => `<presence from='shy@localhost/r' to='${to}'><show>away</show></presence>`;
    const offer = () => {
      for (const s of [nosy, other]) s.written.length = 0;
      server.router.deliverTo(nosy.record, presence(nosy.record.jid), 'presence');
      server.router.deliverTo(other.record, presence(other.record.jid), 'presence');
      return [nosy.written.length, other.written.length];
    };
    const change = async (action: 'block' | 'unblock', jid?: string) => {
      const iq = new Element('iq', { type: 'set', id: `b${Math.random()}` });
      const payload = iq.c(action, { xmlns: NS.blocking });
      if (jid) payload.c('item', { jid });
      server.handleClientStanza(shy.session, iq);
      for (let i = 0; i < 50 && !shy.written.some((w) => w.xml.includes(iq.attrs.id!)); i++) await tick();
    };
    expect(offer(), 'nothing blocked').to.deep.equal([1, 1]);
    await change('block', 'nosy@localhost');
    expect(offer(), 'nosy blocked').to.deep.equal([0, 1]);
    await change('unblock');
    expect(offer(), 'all unblocked').to.deep.equal([1, 1]);
    await change('block', 'nosy@localhost');
    expect(offer(), 'nosy blocked again').to.deep.equal([0, 1]);
    // Unavailable presence is not availability: it goes through.
    nosy.written.length = 0;
    server.router.deliverTo(nosy.record, `<presence from='shy@localhost/r' to='nosy@localhost/r' type='unavailable'/>`, 'presence');
    expect(nosy.written).to.have.length(1);
    await change('unblock');
  });

  it('still drops the carbon copy of a message from a blocked sender', async () => {
    await addUser(server.stores, 'localhost', 'carbonblocker', 'secret', 4096);
    await server.stores.userData.put('carbonblocker', 'blocklist', 'spam.example', '');
    const a = await bind('carbonblocker@localhost/r');
    const carbon = (from: string) => {
      const m = new Element('message', { from: 'carbonblocker@localhost', to: 'carbonblocker@localhost/r', type: 'chat' });
      m.c('received', { xmlns: NS.carbons }).c('forwarded', { xmlns: NS.forward })
        .c('message', { xmlns: NS.client, from, to: 'carbonblocker@localhost/other', type: 'chat' }).c('body').t('x');
      return m.toString();
    };
    server.router.deliverTo(a.record, carbon('bot@spam.example/1'), 'message');
    server.router.deliverTo(a.record, carbon('friend@localhost/1'), 'message');
    expect(a.written).to.deep.equal([{ via: 'raw', xml: carbon('friend@localhost/1') }]);
  });

  it('keeps CSI semantics: an inactive session gets the latest presence per sender, flushed before the next message', async () => {
    const a = await bind('idle@localhost/r');
    server.handleClientStanza(a.session, new Element('inactive', { xmlns: NS.csi }));
    await tick();
    const presence = (from: string, show: string) =>
      `<presence from='${from}' to='idle@localhost/r'><show>${show}</show></presence>`;
    for (const p of [presence('x@localhost/1', 'away'), presence('y@localhost/1', 'dnd'), presence('x@localhost/1', 'xa')]) {
      server.router.deliverTo(a.record, p, 'presence');
    }
    expect(a.written).to.deep.equal([]);
    const message = groupchat('idle@localhost/r', 'wake up');
    server.router.deliverTo(a.record, message, 'message');
    expect(a.written).to.deep.equal([
      { via: 'raw', xml: presence('y@localhost/1', 'dnd') },
      { via: 'raw', xml: presence('x@localhost/1', 'xa') },
      { via: 'raw', xml: message },
    ]);
  });

  it('delivers an element as an element', async () => {
    const a = await bind('el@localhost/r');
    const iq = new Element('iq', { type: 'result', id: 'e1', from: 'localhost', to: 'el@localhost/r' });
    server.router.deliverTo(a.record, iq, 'iq');
    expect(a.written).to.deep.equal([{ via: 'element', xml: iq.toString() }]);
  });
});
