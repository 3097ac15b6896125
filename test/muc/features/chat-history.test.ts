// History in governed rooms: a category with chat history off archives nothing (messages are still
// delivered), serves no join history and answers archive queries with an empty result; otherwise the
// service's default history is what a joiner gets.
import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { governedKit, seedCategory, seedRoom, seedSettings, say, heard, settle, roomJid, type RoomKit } from '../kit.js';

const bodies = (els: Element[]) => els.filter((el) => el.name === 'message' && el.getChildText('body')).map((m) => m.getChildText('body'));

describe('room feature: chat history of governed rooms', () => {
  let kit: RoomKit;
  before(async function () {
    this.timeout(60000);
    kit = await governedKit();
    await seedCategory(kit, { name: 'Hs Off', allowed: ['domain:localhost'], chatHistory: false });
    await seedCategory(kit, { name: 'Hs On', allowed: ['domain:localhost'] });
    await seedRoom(kit, { room: 'hs-off', category: 'Hs Off', privacy: 'open' });
    await seedRoom(kit, { room: 'hs-on', category: 'Hs On', privacy: 'open' });
  });
  after(async () => { await seedSettings(kit, { defaultHistory: 30 }); });

  it('history off: delivered live, not archived, no stanza-id, no join history, empty archive result', async () => {
    const ann = await kit.client('hs-ann@localhost');
    await ann.join('hs-off', 'ann');
    const ben = await kit.client('hs-ben@localhost');
    await ben.join('hs-off', 'ben');
    say(ann, 'hs-off', 'not kept');
    const live = await heard(ben, 'not kept');
    expect(live.getChild('stanza-id', 'urn:xmpp:sid:0')).to.equal(undefined);
    await settle(50);
    expect(await kit.server.stores.archive.lastN(roomJid('hs-off'), 10)).to.deep.equal([]);
    const cid = await kit.client('hs-cid@localhost');
    await cid.join('hs-off', 'cid');
    await settle(50);
    expect(bodies(cid.inbox)).to.deep.equal([]);
    const fin = await cid.iq('set', roomJid('hs-off'), new Element('query', { xmlns: 'urn:xmpp:mam:2' }));
    expect(fin.attrs.type).to.equal('result');
    expect(fin.getChild('fin', 'urn:xmpp:mam:2')!.attrs.complete).to.equal('true');
  });

  it('history on: a joiner gets the service default history, and may ask for more', async () => {
    await seedSettings(kit, { defaultHistory: 2 });
    const ann = await kit.client('hs-ann@localhost', 'on');
    await ann.join('hs-on', 'ann');
    for (const b of ['one', 'two', 'three']) say(ann, 'hs-on', b);
    await heard(ann, 'three');
    const ben = await kit.client('hs-ben@localhost', 'on');
    await ben.join('hs-on', 'ben');
    await settle(50);
    expect(bodies(ben.inbox)).to.deep.equal(['two', 'three']);
    const cid = await kit.client('hs-cid@localhost', 'on');
    const p = new Element('presence', { to: `${roomJid('hs-on')}/cid` });
    p.c('x', { xmlns: 'http://jabber.org/protocol/muc' }).c('history', { maxstanzas: '3' });
    cid.send(p);
    await settle(100);
    expect(bodies(cid.inbox)).to.deep.equal(['one', 'two', 'three']);
  });
});
