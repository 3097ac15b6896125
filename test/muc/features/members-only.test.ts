import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, submitConfig, roomJid, conditionOf, statusesOf, type RoomKit } from '../kit.js';

function setAffiliation(jid: string, affiliation: string): Element {
  const q = new Element('query', { xmlns: 'http://jabber.org/protocol/muc#admin' });
  q.c('item', { jid, affiliation });
  return q;
}

describe('room feature: members-only', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('keeps non-members out (registration-required) and lets members in', async () => {
    const owner = await kit.client('mo-owner@localhost');
    await createRoom(owner, 'mo1', { 'muc#roomconfig_membersonly': '1' });
    const stranger = await kit.client('mo-stranger@localhost');
    expect(conditionOf(await stranger.join('mo1', 'stranger'))).to.equal('registration-required');
    expect((await owner.iq('set', roomJid('mo1'), setAffiliation('mo-member@localhost', 'member'))).attrs.type).to.equal('result');
    const member = await kit.client('mo-member@localhost');
    expect(statusesOf(await member.join('mo1', 'member'))).to.include(110);
  });

  it('removes non-members when the room becomes members-only (322)', async () => {
    const owner = await kit.client('mo2-owner@localhost');
    await createRoom(owner, 'mo2');
    const guest = await kit.client('mo2-guest@localhost');
    await guest.join('mo2', 'guest');
    await submitConfig(owner, 'mo2', { 'muc#roomconfig_membersonly': '1' });
    const gone = await guest.next((el) => el.name === 'presence' && el.attrs.type === 'unavailable');
    expect(statusesOf(gone)).to.include.members([322, 110]);
  });
});
