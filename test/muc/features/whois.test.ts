import { expect } from 'chai';
import { sharedKit, createRoom, submitConfig, statusesOf, type RoomKit } from '../kit.js';

describe('room feature: whois', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('shows real JIDs to everyone in a non-anonymous room (100) and only to moderators otherwise', async () => {
    const owner = await kit.client('wh-owner@localhost');
    await createRoom(owner, 'wh1');
    const a = await kit.client('wh-a@localhost');
    await a.join('wh1', 'a');
    const b = await kit.client('wh-b@localhost');
    const bSelf = await b.join('wh1', 'b');
    expect(statusesOf(bSelf)).to.not.include(100);
    const aSeenByB = b.inbox.find((el) => el.attrs.from?.endsWith('/a'))!;
    expect(aSeenByB.getChild('x', 'http://jabber.org/protocol/muc#user')!.getChild('item')!.attrs.jid).to.equal(undefined);
    const aSeenByOwner = await owner.next((el) => el.name === 'presence' && el.attrs.from?.endsWith('/a') === true);
    expect(aSeenByOwner.getChild('x', 'http://jabber.org/protocol/muc#user')!.getChild('item')!.attrs.jid).to.equal('wh-a@localhost/r');

    await submitConfig(owner, 'wh1', { 'muc#roomconfig_whois': 'anyone' });
    const notice = await a.next((el) => el.name === 'message' && statusesOf(el).length > 0);
    expect(statusesOf(notice)).to.include.members([104, 172]);
    const c = await kit.client('wh-c@localhost');
    expect(statusesOf(await c.join('wh1', 'c'))).to.include(100);
  });
});
