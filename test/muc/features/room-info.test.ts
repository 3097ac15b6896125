import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, roomJid, type RoomKit } from '../kit.js';

describe('room feature: room-info', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('names the room in disco#info and lists title, description and occupants in muc#roominfo', async () => {
    const owner = await kit.client('ri-owner@localhost');
    await createRoom(owner, 'ri1', { 'muc#roomconfig_roomname': 'Tea room', 'muc#roomconfig_roomdesc': 'Leaves and water' });
    const info = (await owner.iq('get', roomJid('ri1'), new Element('query', { xmlns: 'http://jabber.org/protocol/disco#info' }))).getChild('query')!;
    expect(info.getChild('identity')!.attrs.name).to.equal('Tea room');
    const fields = new Map(info.getChild('x', 'jabber:x:data')!.getChildren('field').map((f) => [f.attrs.var, f.getChildText('value')]));
    expect(fields.get('muc#roominfo_description')).to.equal('Leaves and water');
    expect(fields.get('muc#roominfo_occupants')).to.equal('1');
  });
});
