import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, roomJid, conditionOf, settle, type RoomKit } from '../kit.js';

function subjectMessage(room: string, text: string): Element {
  const m = new Element('message', { to: roomJid(room), type: 'groupchat' });
  m.c('subject').t(text);
  return m;
}

describe('room feature: subject', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('lets moderators set the subject, refuses participants (forbidden), and ends every join with it', async () => {
    const owner = await kit.client('sj-owner@localhost');
    await createRoom(owner, 'sj1');
    const guest = await kit.client('sj-guest@localhost');
    await guest.join('sj1', 'guest');
    guest.send(subjectMessage('sj1', 'mine'));
    expect(conditionOf(await guest.next((el) => el.name === 'message' && el.attrs.type === 'error'))).to.equal('forbidden');
    owner.send(subjectMessage('sj1', 'Today'));
    await guest.next((el) => el.getChildText('subject') === 'Today');
    const late = await kit.client('sj-late@localhost');
    await late.join('sj1', 'late');
    await settle(50);
    const last = late.inbox[late.inbox.length - 1]!;
    expect(last.getChildText('subject')).to.equal('Today');
    expect(last.attrs.from).to.equal(`${roomJid('sj1')}/owner`);
    expect(last.getChild('delay', 'urn:xmpp:delay')).to.not.equal(undefined);
  });
});
