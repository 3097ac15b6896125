// A login with everything an account keeps: its roster, a subscription request that waited, a block
// list, a vCard photo and a message stored while it was away. What the session-start reads load (one
// read for the modules' parts at bind, one at the initial presence) must all take effect.
import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { AccountPool, iq, startServer, sleep, xml, type LoggedIn, type RunningServer, type XmppElement } from './harness.js';

const NS = {
  roster: 'jabber:iq:roster',
  delay: 'urn:xmpp:delay',
  vcard: 'vcard-temp',
  vcardUpdate: 'vcard-temp:x:update',
  blocking: 'urn:xmpp:blocking',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
};
const PHOTO = Buffer.from('not really a picture');

describe('conformance: a login with roster, requests, blocks, vCard and offline messages', function () {
  this.timeout(30000);
  let server: RunningServer;
  const accounts = new AccountPool('login', 8);

  before(async function () {
    this.timeout(60000);
    server = await startServer({ users: accounts.users() });
  });
  afterEach(() => accounts.stopClients());
  after(async () => { await server?.stop(); });

  const connect = (user: string, resource?: string) => accounts.connect(server.ports.c2s, user, resource);
  const bare = (c: LoggedIn) => c.jid.split('/')[0]!;
  const presenceFrom = (jid: string, type?: string) => (el: XmppElement) => el.is('presence') && el.attrs.from === jid && el.attrs.type === type;

  it('loads everything at login and delivers the stored message once', async () => {
    const [annName, bobName, cidName, danName] = [accounts.fresh(), accounts.fresh(), accounts.fresh(), accounts.fresh()];
    // ann and bob: a mutual subscription; ann's vCard has a photo; ann blocks dan
    let ann = await connect(annName);
    const bob = await connect(bobName);
    await iq(ann, 'get', xml('query', { xmlns: NS.roster }));
    await iq(bob, 'get', xml('query', { xmlns: NS.roster }));
    await ann.xmpp.send(xml('presence'));
    await bob.xmpp.send(xml('presence'));
    await ann.xmpp.send(xml('presence', { to: bare(bob), type: 'subscribe' }));
    await bob.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribe');
    await bob.xmpp.send(xml('presence', { to: bare(ann), type: 'subscribed' }));
    await bob.xmpp.send(xml('presence', { to: bare(ann), type: 'subscribe' }));
    await ann.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribe' && el.attrs.from === bare(bob));
    await ann.xmpp.send(xml('presence', { to: bare(bob), type: 'subscribed' }));
    await bob.waitFor(presenceFrom(ann.jid));
    await iq(ann, 'set', xml('vCard', { xmlns: NS.vcard }, xml('PHOTO', {}, xml('TYPE', {}, 'image/png'), xml('BINVAL', {}, PHOTO.toString('base64')))));
    await iq(ann, 'set', xml('block', { xmlns: NS.blocking }, xml('item', { jid: `${danName}@localhost` })));
    await ann.stop();
    await bob.waitFor(presenceFrom(ann.jid, 'unavailable'));

    // while ann is away: cid asks to subscribe, bob writes
    const cid = await connect(cidName);
    await cid.xmpp.send(xml('presence', { to: bare(ann), type: 'subscribe' }));
    await bob.xmpp.send(xml('message', { to: bare(ann), type: 'chat', id: 'away1' }, xml('body', {}, 'while you were away')));
    await sleep(300);

    ann = await connect(annName, 'back');
    const roster = (await iq(ann, 'get', xml('query', { xmlns: NS.roster }))).getChild('query', NS.roster)!;
    expect(roster.getChildren('item').map((i) => [i.attrs.jid, i.attrs.subscription])).to.deep.equal([[bare(bob), 'both']]);
    await ann.xmpp.send(xml('presence'));
    // the waiting request is shown again (RFC 6121 §3.1.3)
    await ann.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribe' && el.attrs.from === bare(cid));
    // the stored message, with its delay (XEP-0160)
    const m = await ann.waitFor((el) => el.is('message') && el.attrs.id === 'away1');
    expect(m.getChildText('body')).to.equal('while you were away');
    expect(m.getChild('delay', NS.delay)).to.not.equal(undefined);
    // bob sees ann come back with her avatar hash (XEP-0153), and ann gets bob's presence (the probe)
    const p = await bob.waitFor(presenceFrom(ann.jid));
    expect(p.getChild('x', NS.vcardUpdate)?.getChildText('photo')).to.equal(createHash('sha1').update(PHOTO).digest('hex'));
    await ann.waitFor(presenceFrom(bob.jid));
    // the block list is in force from the start (XEP-0191)
    const dan = await connect(danName);
    await dan.xmpp.send(xml('message', { to: bare(ann), type: 'chat', id: 'blk' }, xml('body', {}, 'let me in')));
    const err = await dan.waitFor((el) => el.is('message') && el.attrs.type === 'error' && el.attrs.id === 'blk');
    expect(err.getChild('error')!.getChild('service-unavailable', NS.stanzas)).to.not.equal(undefined);
    await ann.expectNone((el) => el.is('message') && el.attrs.id === 'blk', 300);

    await ann.expectNone((el) => el.is('message') && el.attrs.id === 'away1', 300);

    // next login: the request still waits and is shown again
    await ann.stop();
    const again = await connect(annName, 'again');
    await again.xmpp.send(xml('presence'));
    await again.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribe' && el.attrs.from === bare(cid));
  });
});
