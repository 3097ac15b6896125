// RFC 6120 streams over real sockets: header, features, TLS, and the stream errors a server owes
// to broken or hostile input, each followed by proof that the server still serves logins.
import { expect } from 'chai';
import {
  startServer, connectRaw, openStream, openSecureStream, streamErrorCondition, login, randomName,
  STREAM_HEADER, sleep, type RunningServer, type RawConnection,
} from './harness.js';

const AUTH_TIMEOUT = 3;

describe('conformance: streams (RFC 6120)', function () {
  this.timeout(30000);
  let server: RunningServer;
  const user = randomName('st');

  before(async function () {
    this.timeout(60000);
    server = await startServer({ users: { [user]: 'secret' }, configYaml: `limits: { authTimeout: ${AUTH_TIMEOUT} }\n` });
  });
  after(async () => {
    await server?.stop();
  });

  /** The server must still accept a normal client login after whatever the test did. */
  async function assertServes(): Promise<void> {
    const c = await login(server.ports.c2s, user, 'secret');
    expect(c.jid).to.match(new RegExp(`^${user}@localhost/`));
    await c.stop();
  }

  async function expectStreamError(raw: RawConnection, condition: string): Promise<void> {
    expect(await streamErrorCondition(raw)).to.equal(condition);
    await Promise.race([raw.closed, sleep(4000).then(() => { throw new Error('server did not close the connection'); })]);
    expect(raw.isClosed()).to.equal(true);
  }

  it('answers with a stream header and requires STARTTLS before anything else', async () => {
    const raw = await connectRaw(server.ports.c2s);
    const features = await openStream(raw);
    const header = /<stream:stream [^>]*>/.exec(raw.text)![0];
    expect(header).to.match(/from=['"]localhost['"]/);
    expect(header).to.match(/version=['"]1\.0['"]/);
    expect(header).to.match(/ id=['"][^'"]{8,}['"]/);
    expect(header).to.match(/xmlns=['"]jabber:client['"]/);
    expect(header).to.match(/xmlns:stream=['"]http:\/\/etherx\.jabber\.org\/streams['"]/);
    expect(features).to.match(/<starttls xmlns=['"]urn:ietf:params:xml:ns:xmpp-tls['"]>\s*<required\/>/);
    expect(features).to.not.include('PLAIN');
    raw.close();
    await assertServes();
  });

  it('offers SCRAM-SHA-1, SCRAM-SHA-256, their -PLUS variants and PLAIN after STARTTLS', async () => {
    const raw = await connectRaw(server.ports.c2s);
    const features = await openSecureStream(raw);
    const mechs = [...features.matchAll(/<mechanism>([^<]+)<\/mechanism>/g)].map((m) => m[1]);
    expect(mechs).to.include.members(['SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256-PLUS', 'PLAIN']);
    expect(features).to.not.include('<starttls');
    raw.close();
  });

  it('serves XEP-0368 direct TLS on its own port', async () => {
    const raw = await connectRaw(server.ports.c2sDirectTls, { tls: 'direct' });
    const features = await openStream(raw);
    expect(features).to.not.include('<starttls');
    expect(features).to.include('<mechanism>PLAIN</mechanism>');
    raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0secret`).toString('base64')}</auth>`);
    await raw.waitFor(/<success[^>]*(\/>|>[\s\S]*?<\/success>)/);
    const bound = await openStream(raw);
    expect(bound).to.include(`<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'`);
    raw.close();
  });

  it('rejects a stream to another domain with host-unknown', async () => {
    const raw = await connectRaw(server.ports.c2s);
    raw.send(STREAM_HEADER('example.org'));
    await expectStreamError(raw, 'host-unknown');
    await assertServes();
  });

  it('rejects a wrong content namespace with invalid-namespace', async () => {
    const raw = await connectRaw(server.ports.c2s);
    raw.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`);
    await expectStreamError(raw, 'invalid-namespace');
    await assertServes();
  });

  it('rejects a wrong stream namespace with invalid-namespace', async () => {
    const raw = await connectRaw(server.ports.c2s);
    raw.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://example.org/streams' to='localhost' version='1.0'>`);
    await expectStreamError(raw, 'invalid-namespace');
  });

  it('rejects an unsupported version with unsupported-version', async () => {
    const raw = await connectRaw(server.ports.c2s);
    raw.send(STREAM_HEADER('localhost').replace("to='localhost' version='1.0'", "to='localhost' version='2.0'"));
    await expectStreamError(raw, 'unsupported-version');
    await assertServes();
  });

  it('answers malformed XML with not-well-formed', async () => {
    const raw = await connectRaw(server.ports.c2s);
    await openStream(raw);
    raw.send(`<message><body>hi</message>`);
    await expectStreamError(raw, 'not-well-formed');
    await assertServes();
  });

  it('answers a comment with restricted-xml', async () => {
    const raw = await connectRaw(server.ports.c2s);
    await openStream(raw);
    raw.send(`<!-- hello -->`);
    await expectStreamError(raw, 'restricted-xml');
    await assertServes();
  });

  it('answers a processing instruction with restricted-xml', async () => {
    const raw = await connectRaw(server.ports.c2s);
    await openStream(raw);
    raw.send(`<?evil data?>`);
    await expectStreamError(raw, 'restricted-xml');
  });

  it('answers a DOCTYPE with restricted-xml', async () => {
    const raw = await connectRaw(server.ports.c2s);
    raw.send(`<?xml version='1.0'?><!DOCTYPE stream:stream>` + STREAM_HEADER().replace(`<?xml version='1.0'?>`, ''));
    await expectStreamError(raw, 'restricted-xml');
    await assertServes();
  });

  it('answers an entity expansion bomb with restricted-xml', async () => {
    const raw = await connectRaw(server.ports.c2s);
    const entities = ['<!ENTITY lol "lol">'];
    for (let i = 1; i < 10; i++) entities.push(`<!ENTITY lol${i} "${`&lol${i === 1 ? '' : i - 1};`.repeat(10)}">`);
    raw.send(`<?xml version='1.0'?><!DOCTYPE lolz [${entities.join('')}]>` + STREAM_HEADER().replace(`<?xml version='1.0'?>`, ''));
    await expectStreamError(raw, 'restricted-xml');
    await assertServes();
  });

  it('answers a stanza over 256 KiB with policy-violation', async () => {
    const raw = await connectRaw(server.ports.c2s);
    await openStream(raw);
    raw.send(`<message to='x@localhost'><body>${'a'.repeat(300 * 1024)}</body></message>`);
    await expectStreamError(raw, 'policy-violation');
    await assertServes();
  });

  it('answers deep nesting with policy-violation', async () => {
    const raw = await connectRaw(server.ports.c2s);
    await openStream(raw);
    raw.send(`<message>${'<a>'.repeat(200)}`);
    await expectStreamError(raw, 'policy-violation');
    await assertServes();
  });

  it('answers invalid UTF-8 with not-well-formed', async () => {
    const raw = await connectRaw(server.ports.c2s);
    await openStream(raw);
    raw.send(Buffer.concat([Buffer.from(`<message><body>`), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), Buffer.from(`</body></message>`)]));
    await expectStreamError(raw, 'not-well-formed');
    await assertServes();
  });

  it('answers a stanza before authentication with not-authorized', async () => {
    const raw = await connectRaw(server.ports.c2s);
    await openSecureStream(raw);
    raw.send(`<message to='${user}@localhost'><body>hi</body></message>`);
    await expectStreamError(raw, 'not-authorized');
    await assertServes();
  });

  it('answers a stanza after authentication but before bind with not-authorized', async () => {
    const raw = await connectRaw(server.ports.c2s);
    await openSecureStream(raw);
    raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0secret`).toString('base64')}</auth>`);
    await raw.waitFor(/<success[^>]*(\/>|>[\s\S]*?<\/success>)/);
    await openStream(raw);
    raw.send(`<message to='${user}@localhost'><body>hi</body></message>`);
    await expectStreamError(raw, 'not-authorized');
    await assertServes();
  });

  it('closes an unauthenticated stream after the auth timeout with connection-timeout', async () => {
    const raw = await connectRaw(server.ports.c2s);
    const started = Date.now();
    await openStream(raw);
    expect(await streamErrorCondition(raw, (AUTH_TIMEOUT + 3) * 1000)).to.equal('connection-timeout');
    const elapsed = Date.now() - started;
    expect(elapsed).to.be.within(AUTH_TIMEOUT * 1000 - 500, (AUTH_TIMEOUT + 2) * 1000);
    await raw.closed;
    await assertServes();
  });

  it('cuts a slowloris (one byte every 200 ms) at the auth timeout', async () => {
    const raw = await connectRaw(server.ports.c2s);
    const started = Date.now();
    const data = Buffer.from(STREAM_HEADER() + `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`.repeat(10));
    let i = 0;
    const drip = setInterval(() => {
      if (i < data.length && !raw.isClosed()) raw.send(data.subarray(i, ++i));
    }, 200);
    try {
      await Promise.race([raw.closed, sleep((AUTH_TIMEOUT + 4) * 1000)]);
    } finally {
      clearInterval(drip);
    }
    expect(raw.isClosed(), 'the connection must be closed by the auth timeout').to.equal(true);
    expect(Date.now() - started).to.be.below((AUTH_TIMEOUT + 3) * 1000);
    expect(raw.text).to.include('connection-timeout');
    await assertServes();
  });
});
