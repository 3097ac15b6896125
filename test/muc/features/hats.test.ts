import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, roomJid, conditionOf, SERVICE, type RoomKit, type FakeClient } from '../kit.js';

async function don(owner: FakeClient, room: string, jid: string, uri: string, title: string): Promise<Element> {
  const start = await owner.iq('set', roomJid(room), new Element('command', { xmlns: 'http://jabber.org/protocol/commands', node: 'urn:xmpp:hats:commands:don', action: 'execute' }));
  const sessionid = start.getChild('command')!.attrs.sessionid!;
  const cmd = new Element('command', { xmlns: 'http://jabber.org/protocol/commands', node: 'urn:xmpp:hats:commands:don', sessionid, action: 'complete' });
  const x = cmd.c('x', { xmlns: 'jabber:x:data', type: 'submit' });
  for (const [k, v] of [['hats#jid', jid], ['hats#uri', uri], ['hats#title', title]]) x.c('field', { var: k }).c('value').t(v!);
  return owner.iq('set', roomJid(room), cmd);
}

describe('room feature: hats', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('lets an owner put a hat on a user, shown in presence and stored with the room', async () => {
    const owner = await kit.client('ht-owner@localhost');
    await createRoom(owner, 'ht1', { 'muc#roomconfig_persistentroom': '1' });
    const wearer = await kit.client('ht-wearer@localhost');
    await wearer.join('ht1', 'wearer');
    const items = await owner.iq('get', roomJid('ht1'), new Element('query', { xmlns: 'http://jabber.org/protocol/disco#items', node: 'http://jabber.org/protocol/commands' }));
    expect(items.getChild('query')!.getChildren('item').map((i) => i.attrs.node)).to.include('urn:xmpp:hats:commands:don');
    expect((await don(owner, 'ht1', 'ht-wearer@localhost', 'urn:example:host', 'Host')).getChild('command')!.attrs.status).to.equal('completed');
    const p = await owner.next((el) => el.name === 'presence' && el.attrs.from === `${roomJid('ht1')}/wearer` && el.getChild('hats', 'urn:xmpp:hats:0') !== undefined);
    expect(p.getChild('hats', 'urn:xmpp:hats:0')!.getChild('hat')!.attrs.title).to.equal('Host');
    await new Promise((r) => setTimeout(r, 100));
    const record = await kit.server.stores.rooms.get(SERVICE, 'ht1');
    expect(record!.config.hats).to.deep.equal({ 'ht-wearer@localhost': [{ uri: 'urn:example:host', title: 'Host' }] });
    const start = await wearer.iq('set', roomJid('ht1'), new Element('command', { xmlns: 'http://jabber.org/protocol/commands', node: 'urn:xmpp:hats:commands:don', action: 'execute' }));
    expect(conditionOf(start)).to.equal('forbidden');
  });
});
