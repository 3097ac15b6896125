import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, say, heard, type RoomKit } from '../kit.js';

const NS = 'urn:xmpp:occupant-id:0';

describe('room feature: occupant-id', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('puts one stable id on an occupant\'s presence and messages, replacing a forged one', async () => {
    const owner = await kit.client('oi-owner@localhost');
    await createRoom(owner, 'oi1');
    const guest = await kit.client('oi-guest@localhost');
    const self = await guest.join('oi1', 'guest');
    const id = self.getChild('occupant-id', NS)!.attrs.id;
    expect(id).to.be.a('string');
    say(guest, 'oi1', 'hello', (m) => m.append(new Element('occupant-id', { xmlns: NS, id: 'forged' })));
    const m = await heard(owner, 'hello');
    expect(m.getChildren('occupant-id', NS).map((e) => e.attrs.id)).to.deep.equal([id]);
  });
});
