// XEP-0114 external components over real sockets.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import {
  startServer, connectRaw, rawLogin, streamErrorCondition, randomName, sleep,
  type RunningServer, type RawConnection, type RawSession,
} from './harness.js';

const COMPONENT = 'bridge.localhost';
const SECRET = 's3cret';

function componentHeader(to: string): string {
  return `<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${to}'>`;
}

describe('conformance: components (XEP-0114)', function () {
  this.timeout(30000);
  let server: RunningServer;
  const user = randomName('co');
  const open: RawConnection[] = [];

  before(async function () {
    this.timeout(60000);
    server = await startServer({ users: { [user]: 'pw' }, configYaml: `components:\n  ${COMPONENT}: ${SECRET}\n` });
  });
  afterEach(async () => {
    for (const c of open.splice(0)) {
      c.close();
      await c.closed;
    }
  });
  after(async () => {
    await server?.stop();
  });

  async function connectComponent(secret = SECRET): Promise<RawConnection> {
    const raw = await connectRaw(server.ports.component);
    open.push(raw);
    raw.send(componentHeader(COMPONENT));
    const header = await raw.waitFor(/<stream:stream[^>]*>/);
    expect(header).to.match(/xmlns=['"]jabber:component:accept['"]/);
    const id = /\sid=['"]([^'"]+)['"]/.exec(header)![1]!;
    raw.send(`<handshake>${createHash('sha1').update(id + secret).digest('hex')}</handshake>`);
    return raw;
  }

  async function userSession(): Promise<RawSession> {
    const s = await rawLogin(server.ports.c2s, user, 'pw', randomName('r'));
    open.push(s);
    return s;
  }

  it('completes the handshake with the right secret', async () => {
    const raw = await connectComponent();
    await raw.waitFor(/<handshake\s*\/>|<handshake><\/handshake>/);
  });

  it('refuses a wrong secret with not-authorized', async () => {
    const raw = await connectComponent('wrong');
    expect(await streamErrorCondition(raw)).to.equal('not-authorized');
    await raw.closed;
  });

  it('refuses an unconfigured component domain with host-unknown', async () => {
    const raw = await connectRaw(server.ports.component);
    open.push(raw);
    raw.send(componentHeader('other.localhost'));
    expect(await streamErrorCondition(raw)).to.equal('host-unknown');
  });

  it('routes stanzas for the component domain and its subdomains to the component', async () => {
    const comp = await connectComponent();
    await comp.waitFor(/<handshake\s*\/>|<handshake><\/handshake>/);
    const s = await userSession();
    s.send(`<message to='${COMPONENT}' id='c1'><body>to domain</body></message>`);
    const m1 = await comp.waitFor(/<message[^>]*id=['"]c1['"][\s\S]*?<\/message>/);
    expect(m1).to.match(new RegExp(`from=['"]${s.jid}['"]`));
    s.send(`<message to='room@sub.${COMPONENT}/nick' id='c2'><body>to subdomain</body></message>`);
    const m2 = await comp.waitFor(/<message[^>]*id=['"]c2['"][\s\S]*?<\/message>/);
    expect(m2).to.include('to subdomain');
    s.send(`<iq to='user@${COMPONENT}' id='c3' type='get'><query xmlns='jabber:iq:version'/></iq>`);
    await comp.waitFor(/<iq[^>]*id=['"]c3['"]/);
  });

  it('lets the component send from any JID of its domain to a user', async () => {
    const comp = await connectComponent();
    await comp.waitFor(/<handshake\s*\/>|<handshake><\/handshake>/);
    const s = await userSession();
    comp.send(`<message from='alice@${COMPONENT}/x' to='${s.jid}' id='f1'><body>from bridge</body></message>`);
    comp.send(`<message from='room@sub.${COMPONENT}' to='${s.jid}' id='f2'><body>from sub</body></message>`);
    const m1 = await s.waitFor(/<message[^>]*id=['"]f1['"][\s\S]*?<\/message>/);
    expect(m1).to.match(new RegExp(`from=['"]alice@${COMPONENT.replace(/\./g, '\\.')}/x['"]`));
    await s.waitFor(/<message[^>]*id=['"]f2['"]/);
  });

  it('hands the component prepared (nodeprepped) addresses, as it must not prepare them itself', async () => {
    const comp = await connectComponent();
    await comp.waitFor(/<handshake\s*\/>|<handshake><\/handshake>/);
    const s = await userSession();
    s.send(`<message to='#Lab%IRC.Example@Sub.BRIDGE.localhost/Nick' id='p1'><body>mixed case</body></message>`);
    const m = await comp.waitFor(/<message[^>]*id=['"]p1['"][\s\S]*?<\/message>/);
    expect(m).to.match(new RegExp(`to=['"]#lab%irc\\.example@sub\\.${COMPONENT.replace(/\./g, '\\.')}/Nick['"]`));
  });

  it('prepares the from addresses a component sends before delivering them', async () => {
    const comp = await connectComponent();
    await comp.waitFor(/<handshake\s*\/>|<handshake><\/handshake>/);
    const s = await userSession();
    comp.send(`<message from='#Lab%IRC@BRIDGE.Localhost/Nick' to='${s.jid}' id='p2'><body>mixed case</body></message>`);
    const m = await s.waitFor(/<message[^>]*id=['"]p2['"][\s\S]*?<\/message>/);
    expect(m).to.match(new RegExp(`from=['"]#lab%irc@${COMPONENT.replace(/\./g, '\\.')}/Nick['"]`));
  });

  it('bounces an unacknowledged IQ request at session end only when the client did not answer it (XEP-0198)', async () => {
    const comp = await connectComponent();
    await comp.waitFor(/<handshake\s*\/>|<handshake><\/handshake>/);
    const s = await userSession();
    s.send(`<enable xmlns='urn:xmpp:sm:3'/>`);
    await s.waitFor(/<enabled[^>]*>/);
    const gw = `gw@${COMPONENT}`;
    comp.send(`<iq from='${gw}' to='${s.jid}' id='answered1' type='get'><query xmlns='jabber:iq:version'/></iq>`);
    comp.send(`<iq from='${gw}' to='${s.jid}' id='ignored1' type='get'><query xmlns='jabber:iq:version'/></iq>`);
    await s.waitFor(/id=['"]ignored1['"]/);
    // The client answers the first and closes its stream without ever acknowledging either.
    s.send(`<iq to='${gw}' id='answered1' type='result'><query xmlns='jabber:iq:version'><name>x</name><version>1</version></query></iq>`);
    await comp.waitFor(/<iq[^>]*id=['"]answered1['"][^>]*>/);
    s.send('</stream:stream>');
    const bounced = await comp.waitFor(/<iq[^>]*id=['"]ignored1['"][\s\S]*?<\/iq>/);
    expect(bounced).to.match(/type=['"]error['"]/);
    await sleep(200);
    const answeredTags = (comp.text.match(/<iq\b[^>]*>/g) ?? []).filter((t) => /id=['"]answered1['"]/.test(t));
    expect(answeredTags, 'one answer, no bounce after it').to.have.length(1);
  });

  it('closes the component stream with invalid-from for a from outside its domain', async () => {
    const comp = await connectComponent();
    await comp.waitFor(/<handshake\s*\/>|<handshake><\/handshake>/);
    comp.send(`<message from='${user}@localhost' to='${user}@localhost'><body>spoof</body></message>`);
    expect(await streamErrorCondition(comp)).to.equal('invalid-from');
  });

  it('bounces stanzas for the component with service-unavailable while it is not connected', async () => {
    await sleep(300); // the previous tests' components disconnecting
    const s = await userSession();
    s.send(`<iq to='${COMPONENT}' id='nc' type='get'><query xmlns='jabber:iq:version'/></iq>`);
    const reply = await s.waitFor(/<iq[^>]*id=['"]nc['"][\s\S]*?<\/iq>/);
    expect(reply).to.match(/type=['"]error['"]/);
    expect(reply).to.include('service-unavailable');
  });
});
