import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, say, heard, roomJid, conditionOf, type RoomKit } from '../kit.js';

describe('room feature: room-archive', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('answers MAM queries on the room JID, and refuses banned users', async () => {
    const owner = await kit.client('ra-owner@localhost');
    await createRoom(owner, 'ra1');
    say(owner, 'ra1', 'for the record');
    await heard(owner, 'for the record');
    const reader = await kit.client('ra-reader@localhost');
    const fin = reader.iq('set', roomJid('ra1'), new Element('query', { xmlns: 'urn:xmpp:mam:2', queryid: 'q1' }));
    const result = await reader.next((el) => el.getChild('result', 'urn:xmpp:mam:2')?.attrs.queryid === 'q1');
    expect(result.toString()).to.contain('for the record');
    expect((await fin).getChild('fin', 'urn:xmpp:mam:2')!.attrs.complete).to.equal('true');

    const ban = new Element('query', { xmlns: 'http://jabber.org/protocol/muc#admin' });
    ban.c('item', { jid: 'ra-reader@localhost', affiliation: 'outcast' });
    await owner.iq('set', roomJid('ra1'), ban);
    expect(conditionOf(await reader.iq('get', roomJid('ra1'), new Element('query', { xmlns: 'urn:xmpp:mam:2' })))).to.equal('forbidden');
  });
});
