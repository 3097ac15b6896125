import { expect } from 'chai';
import { sharedKit, createRoom, say, conditionOf, type RoomKit } from '../kit.js';

describe('room feature: moderated', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('makes unaffiliated newcomers visitors, whose messages are refused', async () => {
    const owner = await kit.client('md-owner@localhost');
    await createRoom(owner, 'md1', { 'muc#roomconfig_moderatedroom': '1' });
    const guest = await kit.client('md-guest@localhost');
    const self = await guest.join('md1', 'guest');
    expect(self.getChild('x', 'http://jabber.org/protocol/muc#user')!.getChild('item')!.attrs.role).to.equal('visitor');
    say(guest, 'md1', 'may I?');
    expect(conditionOf(await guest.next((el) => el.name === 'message' && el.attrs.type === 'error'))).to.equal('forbidden');
  });
});
