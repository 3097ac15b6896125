// XEP-0317 hats in rooms: an owner puts a hat on a user with an ad-hoc command on the room JID, and
// every occupant sees it in that user's presence; others may not; the hat comes off again.
import { expect } from 'chai';
import { startServer, login, sleep, xml, type RunningServer, type LoggedIn, type XmppElement } from './harness.js';

const MUC = 'conference.localhost';
const NS = {
  muc: 'http://jabber.org/protocol/muc',
  mucUser: 'http://jabber.org/protocol/muc#user',
  owner: 'http://jabber.org/protocol/muc#owner',
  commands: 'http://jabber.org/protocol/commands',
  data: 'jabber:x:data',
  hats: 'urn:xmpp:hats:0',
};
const DON = 'urn:xmpp:hats:commands:don';
const DOFF = 'urn:xmpp:hats:commands:doff';

describe('conformance: hats in rooms (XEP-0317)', function () {
  this.timeout(30000);
  let server: RunningServer;
  const clients: LoggedIn[] = [];
  const room = `hatroom@${MUC}`;

  before(async function () {
    this.timeout(60000);
    server = await startServer({ users: { owner: 'pw', bob: 'pw', eve: 'pw' } });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await server.stop();
  });

  async function join(user: string, nick: string): Promise<LoggedIn> {
    const c = await login(server.ports.c2s, user, 'pw');
    clients.push(c);
    await c.xmpp.send(xml('presence', { to: `${room}/${nick}` }, xml('x', { xmlns: NS.muc })));
    await c.waitFor((el) => el.is('message') && el.getChild('subject') !== undefined);
    return c;
  }

  async function command(c: LoggedIn, node: string, fields: Record<string, string>): Promise<XmppElement> {
    const first = await c.xmpp.iqCaller.request(xml('iq', { type: 'set', to: room }, xml('command', { xmlns: NS.commands, node, action: 'execute' })));
    const cmd = first.getChild('command', NS.commands)!;
    expect(cmd.attrs.status).to.equal('executing');
    const form = xml('x', { xmlns: NS.data, type: 'submit' },
      ...Object.entries(fields).map(([k, v]) => xml('field', { var: k }, xml('value', {}, v))));
    const second = await c.xmpp.iqCaller.request(xml('iq', { type: 'set', to: room },
      xml('command', { xmlns: NS.commands, node, sessionid: cmd.attrs.sessionid, action: 'complete' }, form)));
    return second.getChild('command', NS.commands)!;
  }

  const hatsOf = (el: XmppElement) => (el.getChild('hats', NS.hats)?.getChildren('hat') ?? []).map((h) => `${h.attrs.uri}|${h.attrs.title}`);

  it('lets an owner put a hat on a member, shown in presence to everyone, and take it off', async () => {
    const owner = await join('owner', 'boss');
    await owner.xmpp.iqCaller.request(xml('iq', { type: 'set', to: room }, xml('query', { xmlns: NS.owner },
      xml('x', { xmlns: NS.data, type: 'submit' }))));
    const bob = await join('bob', 'bob');
    const eve = await join('eve', 'eve');
    const items = await owner.xmpp.iqCaller.request(xml('iq', { type: 'get', to: room },
      xml('query', { xmlns: 'http://jabber.org/protocol/disco#items', node: NS.commands })));
    expect(items.getChild('query')!.getChildren('item').map((i) => i.attrs.node)).to.include.members([DON, DOFF]);

    const done = await command(owner, DON, { 'hats#jid': 'bob@localhost', 'hats#uri': 'urn:example:presenter', 'hats#title': 'Presenter' });
    expect(done.attrs.status).to.equal('completed');
    const seen = await eve.waitFor((el) => el.is('presence') && el.attrs.from === `${room}/bob` && hatsOf(el).length > 0);
    expect(hatsOf(seen)).to.deep.equal(['urn:example:presenter|Presenter']);
    await bob.waitFor((el) => el.is('presence') && el.attrs.from === `${room}/bob` && hatsOf(el).length > 0);

    const off = await command(owner, DOFF, { 'hats#jid': 'bob@localhost', 'hats#uri': 'urn:example:presenter' });
    expect(off.attrs.status).to.equal('completed');
    await sleep(200);
    const last = eve.received.filter((el) => el.is('presence') && el.attrs.from === `${room}/bob`).pop()!;
    expect(hatsOf(last)).to.deep.equal([]);
  });

  it('refuses hat commands from someone who does not own the room', async () => {
    const eve = clients.find((c) => c.jid.startsWith('eve@'))!;
    let condition = '';
    try {
      await eve.xmpp.iqCaller.request(xml('iq', { type: 'set', to: room }, xml('command', { xmlns: NS.commands, node: DON, action: 'execute' })));
    } catch (e) {
      condition = (e as { condition?: string }).condition ?? '';
    }
    expect(condition).to.equal('forbidden');
  });
});
