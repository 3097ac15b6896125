// archive.defaultPolicy: what one-to-one archiving does for accounts that never set MAM preferences.
import { expect } from 'chai';
import { startServer, login, sleep, xml, type RunningServer, type LoggedIn } from './harness.js';

const MAM = 'urn:xmpp:mam:2';
const RSM = 'http://jabber.org/protocol/rsm';

describe('conformance: server default archiving policy', function () {
  this.timeout(30000);
  let server: RunningServer;
  const clients: LoggedIn[] = [];

  before(async function () {
    this.timeout(60000);
    server = await startServer({ users: { ann: 'pw', ben: 'pw' }, configYaml: 'archive:\n  defaultPolicy: never\n' });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await server.stop();
  });

  it('archives nothing under "never" until a user asks for it, and says so in the preferences', async () => {
    const ann = await login(server.ports.c2s, 'ann', 'pw');
    const ben = await login(server.ports.c2s, 'ben', 'pw');
    clients.push(ann, ben);
    // Available, so that chat to the bare JID is delivered rather than stored offline.
    await ann.xmpp.send(xml('presence'));
    await ben.xmpp.send(xml('presence'));
    await sleep(100);
    const prefs = await ann.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('prefs', { xmlns: MAM })));
    expect(prefs.getChild('prefs', MAM)!.attrs.default).to.equal('never');

    await ann.xmpp.send(xml('message', { to: 'ben@localhost', type: 'chat', id: 'm1' }, xml('body', {}, 'not kept')));
    await ben.waitFor((el) => el.is('message') && el.attrs.id === 'm1');
    const count = async (c: LoggedIn) => {
      const fin = await c.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('query', { xmlns: MAM },
        xml('set', { xmlns: RSM }, xml('max', {}, '0')))));
      return Number(fin.getChild('fin', MAM)!.getChild('set', RSM)!.getChildText('count'));
    };
    expect(await count(ann)).to.equal(0);
    expect(await count(ben)).to.equal(0);

    // Ann opts in: her copies are kept from now on, Ben's still are not.
    await ann.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('prefs', { xmlns: MAM, default: 'always' })));
    await ann.xmpp.send(xml('message', { to: 'ben@localhost', type: 'chat', id: 'm2' }, xml('body', {}, 'kept for ann')));
    await ben.waitFor((el) => el.is('message') && el.attrs.id === 'm2');
    await sleep(100);
    expect(await count(ann)).to.equal(1);
    expect(await count(ben)).to.equal(0);
  });
});
