// Resource binding and the bound session (RFC 6120 §7-§8, RFC 6121 §8) over raw sockets.
import { expect } from 'chai';
import {
  startServer, rawLogin, streamErrorCondition, login, randomName, sleep,
  type RunningServer, type RawSession,
} from './harness.js';

const STANZA_NS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

/** The error condition inside a stanza error reply. */
function stanzaCondition(xml: string): string | undefined {
  return new RegExp(`<([a-z-]+) xmlns=['"]${STANZA_NS}['"]`).exec(xml)?.[1];
}

describe('conformance: sessions', function () {
  this.timeout(30000);
  let server: RunningServer;
  const users = Array.from({ length: 6 }, (_, i) => randomName(`se${i}`));
  const [alice, bob] = users as [string, string];
  const open: RawSession[] = [];

  before(async function () {
    this.timeout(60000);
    server = await startServer({ users: Object.fromEntries(users.map((u) => [u, 'pw'])) });
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });
  after(async () => {
    await server?.stop();
  });

  async function session(user = alice, resource?: string): Promise<RawSession> {
    const s = await rawLogin(server.ports.c2s, user, 'pw', resource);
    open.push(s);
    return s;
  }

  /** An IQ the server always answers, to prove the stream is alive and everything before was handled. */
  async function roundTrip(s: RawSession): Promise<string> {
    const id = randomName('rt');
    s.send(`<iq type='set' id='${id}'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`);
    return s.waitFor((t) => new RegExp(`<iq[^>]*id=['"]${id}['"]`).test(t));
  }

  it('binds the requested resource', async () => {
    const s = await session(alice, 'balcony');
    expect(s.jid).to.equal(`${alice}@localhost/balcony`);
  });

  it('generates a resource when none is requested', async () => {
    const s = await session(alice);
    expect(s.jid).to.match(new RegExp(`^${alice}@localhost/.+`));
    const t = await session(alice);
    expect(t.jid, 'generated resources are unique').to.not.equal(s.jid);
  });

  it('refuses a second bind with not-allowed', async () => {
    const s = await session(alice);
    s.send(`<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>again</resource></bind></iq>`);
    const reply = await s.waitFor(/<iq[^>]*id=['"]b2['"][\s\S]*?<\/iq>/);
    expect(reply).to.match(/type=['"]error['"]/);
    expect(stanzaCondition(reply)).to.equal('not-allowed');
  });

  it('replaces a session logging in again with the same full JID: the old stream gets conflict', async () => {
    const first = await session(bob, 'same');
    const second = await session(bob, 'same');
    expect(second.jid).to.equal(`${bob}@localhost/same`);
    expect(await streamErrorCondition(first)).to.equal('conflict');
    await first.closed;
    await roundTrip(second);
  });

  it('accepts the legacy session IQ', async () => {
    const s = await session();
    const reply = await roundTrip(s);
    expect(reply).to.match(/type=['"]result['"]/);
  });

  it('answers an IQ without id with bad-request', async () => {
    const s = await session();
    s.send(`<iq type='get'><query xmlns='jabber:iq:roster'/></iq>`);
    const reply = await s.waitFor(/<iq[^>]*type=['"]error['"][\s\S]*?<\/iq>/);
    expect(stanzaCondition(reply)).to.equal('bad-request');
  });

  it('answers an IQ get with two children with bad-request', async () => {
    const s = await session();
    s.send(`<iq type='get' id='two'><query xmlns='jabber:iq:roster'/><query xmlns='jabber:iq:version'/></iq>`);
    const reply = await s.waitFor(/<iq[^>]*id=['"]two['"][\s\S]*?<\/iq>/);
    expect(reply).to.match(/type=['"]error['"]/);
    expect(stanzaCondition(reply)).to.equal('bad-request');
  });

  it('ignores an IQ result addressed to nowhere (no reply, stream stays up)', async () => {
    const s = await session();
    s.send(`<iq type='result' id='r1' to='localhost'/>`);
    s.send(`<iq type='result' id='r2' to='${bob}@localhost/nowhere'/>`);
    s.send(`<iq type='error' id='r3' to='${randomName('nobody')}@localhost'><error type='cancel'><item-not-found xmlns='${STANZA_NS}'/></error></iq>`);
    const unread = await roundTrip(s);
    expect(unread).to.not.match(/id=['"]r[123]['"]/);
    expect(s.isClosed()).to.equal(false);
  });

  it('closes the stream with invalid-from when from is spoofed', async () => {
    const s = await session();
    s.send(`<message from='${bob}@localhost/x' to='${bob}@localhost'><body>spoof</body></message>`);
    expect(await streamErrorCondition(s)).to.equal('invalid-from');
  });

  it('accepts from set to its own full or bare JID', async () => {
    const s = await session();
    s.send(`<iq type='set' id='own1' from='${s.jid}'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`);
    await s.waitFor(/<iq[^>]*id=['"]own1['"][^>]*type=['"]result['"]|<iq[^>]*type=['"]result['"][^>]*id=['"]own1['"]/);
    s.send(`<iq type='set' id='own2' from='${alice}@localhost'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`);
    await s.waitFor(/<iq[^>]*id=['"]own2['"]/);
    expect(s.isClosed()).to.equal(false);
  });

  it('answers an invalid to with jid-malformed', async () => {
    const s = await session();
    s.send(`<message to='a@b@c' id='bad1'><body>x</body></message>`);
    const reply = await s.waitFor(/<message[^>]*id=['"]bad1['"][\s\S]*?<\/message>/);
    expect(reply).to.match(/type=['"]error['"]/);
    expect(stanzaCondition(reply)).to.equal('jid-malformed');
  });

  it('answers a message to an unknown local user with service-unavailable', async () => {
    const s = await session();
    const ghost = `${randomName('ghost')}@localhost`;
    s.send(`<message to='${ghost}' id='m1' type='chat'><body>hello?</body></message>`);
    const reply = await s.waitFor(/<message[^>]*id=['"]m1['"][\s\S]*?<\/message>/);
    expect(reply).to.match(/type=['"]error['"]/);
    expect(reply).to.match(new RegExp(`from=['"]${ghost}['"]`));
    expect(stanzaCondition(reply)).to.equal('service-unavailable');
  });

  it('answers an IQ to an unknown local user with service-unavailable', async () => {
    const s = await session();
    s.send(`<iq to='${randomName('ghost')}@localhost' id='i1' type='get'><query xmlns='jabber:iq:version'/></iq>`);
    const reply = await s.waitFor(/<iq[^>]*id=['"]i1['"][\s\S]*?<\/iq>/);
    expect(stanzaCondition(reply)).to.equal('service-unavailable');
  });

  it('answers a message to another domain with remote-server-not-found', async () => {
    const s = await session();
    s.send(`<message to='juliet@capulet.example' id='m2' type='chat'><body>hi</body></message>`);
    const reply = await s.waitFor(/<message[^>]*id=['"]m2['"][\s\S]*?<\/message>/);
    expect(reply).to.match(/type=['"]error['"]/);
    expect(stanzaCondition(reply)).to.equal('remote-server-not-found');
  });

  it('delivers a message to a full JID of another session', async () => {
    const a = await session(users[2], 'one');
    const b = await session(users[3], 'two');
    a.send(`<message to='${b.jid}' id='d1' type='chat'><body>direct</body></message>`);
    const got = await b.waitFor(/<message[\s\S]*?<\/message>/);
    expect(got).to.match(new RegExp(`from=['"]${a.jid}['"]`));
    expect(got).to.include('<body>direct</body>');
  });

  it('ends the session on a clean </stream:stream> (XEP-0198 §closure): its full JID becomes unavailable', async () => {
    const a = await session(users[4], 'watcher');
    const b = await session(users[5], 'leaver');
    b.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
    await b.waitFor(/<enabled[^>]*>/);
    b.send('</stream:stream>');
    await b.closed;
    await sleep(200);
    a.send(`<iq to='${b.jid}' id='gone' type='get'><query xmlns='jabber:iq:version'/></iq>`);
    const reply = await a.waitFor(/<iq[^>]*id=['"]gone['"][\s\S]*?<\/iq>/);
    expect(reply).to.match(/type=['"]error['"]/);
    expect(stanzaCondition(reply)).to.equal('service-unavailable');
  });

  it('sends system-shutdown to every client on SIGTERM', async function () {
    this.timeout(60000);
    const user = randomName('sd');
    const own = await startServer({ users: { [user]: 'pw' } });
    try {
      const raw = await rawLogin(own.ports.c2s, user, 'pw');
      const client = await login(own.ports.c2s, user, 'pw');
      const stopping = own.stop();
      expect(await streamErrorCondition(raw)).to.equal('system-shutdown');
      await raw.closed;
      await client.disconnected;
      expect(client.errors).to.include('system-shutdown');
      expect(await stopping).to.equal(0);
    } finally {
      await own.kill();
    }
  });

  it('keeps serving after all of the above', async () => {
    const c = await login(server.ports.c2s, alice, 'pw');
    await c.stop();
  });
});
