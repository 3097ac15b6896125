import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, roomJid, conditionOf, type RoomKit } from '../kit.js';

describe('room feature: hidden', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('says muc_hidden and keeps the archive from non-members who are not in the room', async () => {
    const owner = await kit.client('hd-owner@localhost');
    await createRoom(owner, 'hd1', { 'muc#roomconfig_publicroom': '0' });
    const outsider = await kit.client('hd-outsider@localhost');
    const info = await outsider.iq('get', roomJid('hd1'), new Element('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    const features = info.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
    expect(features).to.include('muc_hidden').and.not.include('muc_public');
    const mam = await outsider.iq('get', roomJid('hd1'), new Element('query', { xmlns: 'urn:xmpp:mam:2' }));
    expect(conditionOf(mam)).to.equal('forbidden');
  });
});
