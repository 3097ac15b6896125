// Bad input over real sockets, for the rows of the bad-input table (docs/reliability.md) that no
// other suite covers: each gets the condition the RFC or XEP names, and the server keeps serving.
import { expect } from 'chai';
import {
  startServer, connectRaw, openStream, openSecureStream, rawLogin, streamErrorCondition, login, randomName, sleep,
  STREAM_HEADER, type RunningServer, type RawConnection, type RawSession,
} from './harness.js';

const STANZA_NS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const COMMANDS = 'http://jabber.org/protocol/commands';
const OFFLINE_LIMIT = 3;

/** The error condition inside a stanza error reply. */
function stanzaCondition(xml: string): string | undefined {
  return new RegExp(`<([a-z-]+) xmlns=['"]${STANZA_NS}['"]`).exec(xml)?.[1];
}

describe('conformance: bad input', function () {
  this.timeout(30000);
  let server: RunningServer;
  const users = Array.from({ length: 4 }, (_, i) => randomName(`bi${i}`));
  const [alice, bob, admin, offline] = users as [string, string, string, string];
  const open: RawConnection[] = [];

  before(async function () {
    this.timeout(60000);
    server = await startServer({
      users: Object.fromEntries(users.map((u) => [u, 'pw'])), admins: [`${admin}@localhost`],
      configYaml: `limits: { offlineMessages: ${OFFLINE_LIMIT} }\n`,
    });
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

  async function raw(): Promise<RawConnection> {
    const r = await connectRaw(server.ports.c2s);
    open.push(r);
    return r;
  }

  /** Waits for the reply with this id and returns it whole. */
  function reply(s: RawConnection, name: string, id: string): Promise<string> {
    return s.waitFor(new RegExp(`<${name}[^>]*id=['"]${id}['"][^>]*(/>|>[\\s\\S]*?</${name}>)`));
  }

  /** The stream is alive and everything sent before was handled. */
  async function roundTrip(s: RawConnection): Promise<void> {
    const id = randomName('rt');
    s.send(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    expect(await reply(s, 'iq', id)).to.match(/type=['"]result['"]/);
  }

  async function expectStreamError(s: RawConnection, condition: string): Promise<void> {
    expect(await streamErrorCondition(s)).to.equal(condition);
    await Promise.race([s.closed, sleep(4000).then(() => { throw new Error('server did not close the connection'); })]);
  }

  async function assertServes(): Promise<void> {
    const c = await login(server.ports.c2s, bob, 'pw');
    await c.stop();
  }

  describe('XML and streams (RFC 6120 §4.9)', () => {
    it('answers an undeclared namespace prefix with bad-namespace-prefix', async () => {
      const s = await session();
      s.send(`<foo:message to='${bob}@localhost'><body>x</body></foo:message>`);
      await expectStreamError(s, 'bad-namespace-prefix');
      await assertServes();
    });

    it('answers an unknown first-level element with unsupported-stanza-type', async () => {
      const s = await session();
      s.send(`<note to='${bob}@localhost'>x</note>`);
      await expectStreamError(s, 'unsupported-stanza-type');
      await assertServes();
    });

    it('answers a stanza in a namespace other than jabber:client with unsupported-stanza-type', async () => {
      const s = await session();
      s.send(`<message xmlns='jabber:server' to='${bob}@localhost'><body>x</body></message>`);
      await expectStreamError(s, 'unsupported-stanza-type');
      await assertServes();
    });

    it('answers a character reference to a character XML forbids (&#0;) with not-well-formed', async () => {
      const s = await session();
      s.send(`<message to='${bob}@localhost'><body>a&#0;b</body></message>`);
      await expectStreamError(s, 'not-well-formed');
      await assertServes();
    });

    it('answers an attribute value over the stanza size limit with policy-violation, before the stanza ends', async () => {
      const s = await session();
      s.send(`<message to='${bob}@localhost' id='${'x'.repeat(300 * 1024)}`);
      await expectStreamError(s, 'policy-violation');
      await assertServes();
    });

    it('answers an XML declaration naming another encoding with unsupported-encoding', async () => {
      const r = await raw();
      r.send(`<?xml version='1.0' encoding='ISO-8859-1'?>` + STREAM_HEADER().replace(`<?xml version='1.0'?>`, ''));
      await expectStreamError(r, 'unsupported-encoding');
      await assertServes();
    });

    it('serves a stream header without to as its own domain (RFC 6120 §4.7.2 leaves it to the server)', async () => {
      const r = await raw();
      r.send(STREAM_HEADER().replace(" to='localhost'", ''));
      await r.waitFor(/<stream:features/);
      expect(r.text).to.match(/<stream:stream [^>]*from=['"]localhost['"]/);
    });

    it('answers a malformed from with invalid-from', async () => {
      const s = await session();
      s.send(`<message from='a@b@c' to='${bob}@localhost'><body>x</body></message>`);
      await expectStreamError(s, 'invalid-from');
      await assertServes();
    });
  });

  describe('stanzas (RFC 6120 §8, RFC 6121)', () => {
    it('answers an IQ get or set in an unknown namespace with service-unavailable (RFC 6120 §8.4)', async () => {
      const s = await session();
      s.send(`<iq type='get' id='u1' to='localhost'><query xmlns='urn:example:unknown'/></iq>`);
      expect(stanzaCondition(await reply(s, 'iq', 'u1'))).to.equal('service-unavailable');
      s.send(`<iq type='set' id='u2'><query xmlns='urn:example:unknown'/></iq>`);
      expect(stanzaCondition(await reply(s, 'iq', 'u2'))).to.equal('service-unavailable');
      s.send(`<iq type='get' id='u3' to='${bob}@localhost'><query xmlns='urn:example:unknown'/></iq>`);
      expect(stanzaCondition(await reply(s, 'iq', 'u3'))).to.equal('service-unavailable');
      await roundTrip(s);
    });

    it('answers an IQ of an unknown type with bad-request (RFC 6120 §8.2.3)', async () => {
      const s = await session();
      s.send(`<iq type='fetch' id='t1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
      expect(stanzaCondition(await reply(s, 'iq', 't1'))).to.equal('bad-request');
      s.send(`<iq type='get' id='t2' to='localhost'/>`);
      expect(stanzaCondition(await reply(s, 'iq', 't2'))).to.equal('bad-request');
      await roundTrip(s);
    });

    it('answers a presence of an unknown type with bad-request', async () => {
      const s = await session();
      s.send(`<presence type='online' id='p1'/>`);
      expect(stanzaCondition(await reply(s, 'presence', 'p1'))).to.equal('bad-request');
      await roundTrip(s);
    });

    it('treats a message of an unknown type as normal (RFC 6121 §5.2.2): delivered', async () => {
      const s = await session();
      const b = await session(bob, 'ut');
      b.send(`<presence/>`);
      await b.waitFor(/<presence[^>]*>/);
      s.send(`<message type='shout' id='m1' to='${b.jid}'><body>hey</body></message>`);
      const got = await reply(b, 'message', 'm1');
      expect(got).to.include('<body>hey</body>');
    });

    it('answers an address with a resource over 1023 bytes with jid-malformed (RFC 7622 §3.4)', async () => {
      const s = await session();
      s.send(`<message id='j1' to='${bob}@localhost/${'r'.repeat(1100)}'><body>x</body></message>`);
      expect(stanzaCondition(await reply(s, 'message', 'j1'))).to.equal('jid-malformed');
      await roundTrip(s);
    });

    it('never answers an error with an error (RFC 6120 §8.3.1)', async () => {
      const s = await session();
      s.send(`<message type='error' id='e1' to='${randomName('nobody')}@localhost'><error type='cancel'><item-not-found xmlns='${STANZA_NS}'/></error></message>`);
      s.send(`<iq type='error' id='e2' to='localhost'><error type='cancel'><item-not-found xmlns='${STANZA_NS}'/></error></iq>`);
      await roundTrip(s);
      expect(s.text).to.not.match(/id=['"]e[12]['"]/);
    });
  });

  describe('admin commands (XEP-0050, XEP-0133)', () => {
    const node = 'http://jabber.org/protocol/admin#add-user';
    async function start(s: RawSession, id: string): Promise<string> {
      s.send(`<iq type='set' id='${id}' to='localhost'><command xmlns='${COMMANDS}' node='${node}' action='execute'/></iq>`);
      const r = await reply(s, 'iq', id);
      const sid = /sessionid=['"]([^'"]+)['"]/.exec(r)?.[1];
      if (!sid) throw new Error(`no session: ${r}`);
      return sid;
    }
    function submit(s: RawSession, id: string, sid: string, fields: Record<string, string>): Promise<string> {
      const f = Object.entries(fields).map(([k, v]) => `<field var='${k}'><value>${v}</value></field>`).join('');
      s.send(`<iq type='set' id='${id}' to='localhost'><command xmlns='${COMMANDS}' node='${node}' sessionid='${sid}'>` +
        `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field>${f}</x></command></iq>`);
      return reply(s, 'iq', id);
    }

    it('answers an unknown command node with item-not-found (XEP-0050 §4.4)', async () => {
      const s = await session(admin);
      s.send(`<iq type='set' id='c1' to='localhost'><command xmlns='${COMMANDS}' node='urn:example:no-such-command' action='execute'/></iq>`);
      expect(stanzaCondition(await reply(s, 'iq', 'c1'))).to.equal('item-not-found');
    });

    it('refuses a command whose passwords differ and creates nothing, saying why', async () => {
      const s = await session(admin);
      const name = randomName('never');
      const r = await submit(s, 'c2', await start(s, 'c2s'), { accountjid: `${name}@localhost`, password: 'a', 'password-verify': 'b' });
      // XEP-0133: the command completes with a note of type error that says why.
      expect(r).to.match(/status=['"]completed['"]/);
      expect(r).to.match(/<note type=['"]error['"]>The passwords do not match<\/note>/);
      // The account does not exist: logging in fails.
      const c = await connectRaw(server.ports.c2s);
      open.push(c);
      await openSecureStream(c);
      c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${name}\0a`).toString('base64')}</auth>`);
      expect(await c.waitFor(/<success|<failure[\s\S]*?<\/failure>/)).to.include('not-authorized');
    });

    it('refuses an account JID of another domain with an error and creates nothing', async () => {
      const s = await session(admin);
      const r = await submit(s, 'c3', await start(s, 'c3s'), { accountjid: `someone@example.org`, password: 'a', 'password-verify': 'a' });
      expect(r).to.match(/<note type=['"]error['"]>[^<]*not an account of localhost<\/note>/);
    });

    it('answers a session id nobody started with bad-request and bad-sessionid (XEP-0050 §4.6)', async () => {
      const s = await session(admin);
      const r = await submit(s, 'c4', 'no-such-session', { accountjid: `x@localhost`, password: 'a', 'password-verify': 'a' });
      // XEP-0050 §4.6: bad-request with bad-sessionid.
      expect(stanzaCondition(r)).to.equal('bad-request');
      expect(r).to.include(`<bad-sessionid xmlns='${COMMANDS}'/>`);
      await roundTrip(s);
    });
  });

  describe('floods', () => {
    it('slows a connection that sends faster than bytesPerSecond, loses none of its stanzas, and keeps serving others', async () => {
      const flooder = await session(alice, 'flood');
      const other = await session(bob, 'calm');
      // 3 MiB of IQs at once: three times the default rate.
      const count = 6000;
      const pad = 'p'.repeat(480);
      let batch = '';
      for (let i = 0; i < count; i++) {
        batch += `<iq type='get' id='f${i}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq><message to='${alice}@localhost/none' type='headline'><body>${pad}</body></message>`;
      }
      const started = Date.now();
      flooder.send(batch);
      // The calm client is answered promptly while the flooder is held back.
      const rtts: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t = Date.now();
        await roundTrip(other);
        rtts.push(Date.now() - t);
        await sleep(100);
      }
      expect(Math.max(...rtts)).to.be.below(500);
      await flooder.waitFor(new RegExp(`id=['"]f${count - 1}['"]`), 20000);
      const elapsed = Date.now() - started;
      expect(elapsed, 'the flooder was slowed to its rate').to.be.above(1000);
      const answered = (flooder.text.match(/<iq [^>]*type=['"]result['"]/g) ?? []).length;
      expect(answered).to.be.at.least(count);
    });
  });

  it(`answers a message for an account whose offline storage is full (${OFFLINE_LIMIT}) with service-unavailable (XEP-0160 §2)`, async () => {
    const s = await session();
    for (let i = 0; i < OFFLINE_LIMIT; i++) s.send(`<message id='o${i}' to='${offline}@localhost'><body>${i}</body></message>`);
    await roundTrip(s);
    await sleep(300);
    expect(s.text).to.not.match(/id=['"]o\d['"][^>]*type=['"]error['"]/);
    s.send(`<message id='over' to='${offline}@localhost'><body>one too many</body></message>`);
    expect(stanzaCondition(await reply(s, 'message', 'over'))).to.equal('service-unavailable');
  });

  it('serves after all of the above', async () => {
    await assertServes();
    expect(server.process.exitCode).to.equal(null);
  });
});
