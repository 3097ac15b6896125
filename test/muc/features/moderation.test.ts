import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, say, heard, roomJid, conditionOf, settle, type RoomKit } from '../kit.js';

function retract(id: string): Element {
  const m = new Element('moderate', { xmlns: 'urn:xmpp:message-moderate:1', id });
  m.c('retract', { xmlns: 'urn:xmpp:message-retract:1' });
  m.c('reason').t('spam');
  return m;
}

describe('room feature: moderation', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('retracts a message for everyone, in the archive and the join history; only moderators may', async () => {
    const owner = await kit.client('mm-owner@localhost');
    await createRoom(owner, 'mm1');
    const guest = await kit.client('mm-guest@localhost');
    await guest.join('mm1', 'guest');
    say(guest, 'mm1', 'buy now');
    const sent = await heard(owner, 'buy now');
    const id = sent.getChild('stanza-id', 'urn:xmpp:sid:0')!.attrs.id!;
    expect(conditionOf(await guest.iq('set', roomJid('mm1'), retract(id)))).to.equal('forbidden');
    expect((await owner.iq('set', roomJid('mm1'), retract(id))).attrs.type).to.equal('result');
    const notice = await guest.next((el) => el.getChild('retract', 'urn:xmpp:message-retract:1') !== undefined);
    expect(notice.getChild('retract', 'urn:xmpp:message-retract:1')!.attrs.id).to.equal(id);
    const stored = (await kit.server.stores.archive.query(roomJid('mm1'), { ids: [id], limit: 1 })).entries[0]!;
    expect(stored.stanza).to.contain('retracted').and.not.contain('buy now');
    const late = await kit.client('mm-late@localhost');
    await late.join('mm1', 'late');
    await settle(50);
    expect(late.inbox.some((el) => el.getChildText('body') === 'buy now')).to.equal(false);
    expect(conditionOf(await owner.iq('set', roomJid('mm1'), retract('no-such-id')))).to.equal('item-not-found');
  });
});
