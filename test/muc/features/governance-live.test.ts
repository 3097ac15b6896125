// Live changes to the persistent-chat model re-check the occupants of the rooms a node holds: lost
// access leaves with 321 (membership) or 322 (members-only), disabling ejects with 332, roles follow
// presenters, and a privacy, type or name change is announced (104).
import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { chatModel } from '../../../src/pchat/module.js';
import {
  governedKit, seedCategory, seedRoom, seedGroup, changeRoom, statusesOf, conditionOf, type RoomKit, type FakeClient,
} from '../kit.js';

const MUC_USER = 'http://jabber.org/protocol/muc#user';

const gone = (c: FakeClient) => c.next((el) => el.name === 'presence' && el.attrs.type === 'unavailable' && statusesOf(el).includes(110));
const reasonOf = (el: Element) => el.getChild('x', MUC_USER)?.getChild('item')?.getChildText('reason');

describe('room feature: governance, live changes', () => {
  let kit: RoomKit;
  before(async function () {
    this.timeout(60000);
    kit = await governedKit();
    await seedGroup(kit, 'lv-team', ['lv-ann@localhost', 'lv-ben@localhost']);
    await seedCategory(kit, { name: 'Lv Cat', allowed: ['domain:localhost'] });
  });

  it('a member removed from a group leaves with 321 and a reason; others see it', async () => {
    await seedRoom(kit, { room: 'lv-group', category: 'Lv Cat', members: ['group:lv-team', 'lv-cid@localhost'] });
    const ann = await kit.client('lv-ann@localhost', 'g');
    await ann.join('lv-group', 'ann');
    const cid = await kit.client('lv-cid@localhost', 'g');
    await cid.join('lv-group', 'cid');
    cid.clear();
    await seedGroup(kit, 'lv-team', ['lv-ben@localhost']);
    const out = await gone(ann);
    expect(statusesOf(out)).to.include(321);
    expect(reasonOf(out)).to.equal('You are no longer allowed in this room');
    const seen = await cid.next((el) => el.name === 'presence' && el.attrs.from?.endsWith('/ann') === true && el.attrs.type === 'unavailable');
    expect(statusesOf(seen)).to.include(321);
    expect(kit.service.loadedRoom('lv-group')!.occupants.has('cid')).to.equal(true);
    await seedGroup(kit, 'lv-team', ['lv-ann@localhost', 'lv-ben@localhost']);
  });

  it('an open room made closed removes non-members with 322 and tells the rest (104)', async () => {
    await seedRoom(kit, { room: 'lv-priv', category: 'Lv Cat', privacy: 'open', members: ['lv-ann@localhost'] });
    const ann = await kit.client('lv-ann@localhost', 'p');
    await ann.join('lv-priv', 'ann');
    const dan = await kit.client('lv-dan@localhost', 'p');
    await dan.join('lv-priv', 'dan');
    ann.clear();
    await changeRoom(kit, 'lv-priv', { privacy: 'closed' });
    const out = await gone(dan);
    expect(statusesOf(out)).to.include(322);
    expect(reasonOf(out)).to.equal('This room is now for its members only');
    const notice = await ann.next((el) => el.name === 'message' && statusesOf(el).includes(104));
    expect(notice.attrs.from).to.equal('lv-priv@conference.localhost');
    expect(conditionOf(await dan.join('lv-priv', 'dan'))).to.equal('registration-required');
  });

  it('disabling a room ejects every occupant with 332; enabling lets them back', async () => {
    await seedRoom(kit, { room: 'lv-dis', category: 'Lv Cat', privacy: 'open', managers: ['lv-ann@localhost'] });
    const ann = await kit.client('lv-ann@localhost', 'd');
    await ann.join('lv-dis', 'ann');
    const ben = await kit.client('lv-ben@localhost', 'd');
    await ben.join('lv-dis', 'ben');
    await changeRoom(kit, 'lv-dis', { disabled: true });
    for (const c of [ann, ben]) {
      const out = await gone(c);
      expect(statusesOf(out)).to.include(332);
      expect(reasonOf(out)).to.equal('This room has been disabled');
    }
    expect(conditionOf(await ben.join('lv-dis', 'ben'))).to.equal('forbidden');
    await changeRoom(kit, 'lv-dis', { disabled: false });
    expect(statusesOf(await ben.join('lv-dis', 'ben'))).to.include(110);
  });

  it('a deny added to the category later removes the user (321)', async () => {
    await seedRoom(kit, { room: 'lv-deny', category: 'Lv Cat', privacy: 'open' });
    const eve = await kit.client('lv-eve@localhost', 'x');
    await eve.join('lv-deny', 'eve');
    await seedCategory(kit, { name: 'Lv Cat', allowed: ['domain:localhost'], denied: ['lv-eve@localhost'] });
    expect(statusesOf(await gone(eve))).to.include(321);
    await seedCategory(kit, { name: 'Lv Cat', allowed: ['domain:localhost'] });
  });

  it('auditorium: a presenter added or removed while present changes role, and everyone sees it', async () => {
    await seedRoom(kit, { room: 'lv-aud', category: 'Lv Cat', privacy: 'open', type: 'auditorium', presenters: [] });
    const ann = await kit.client('lv-ann@localhost', 'a');
    await ann.join('lv-aud', 'ann');
    const ben = await kit.client('lv-ben@localhost', 'a');
    await ben.join('lv-aud', 'ben');
    ann.clear();
    ben.clear();
    await changeRoom(kit, 'lv-aud', { presenters: ['lv-ben@localhost'] });
    const seen = await ann.next((el) => el.name === 'presence' && el.attrs.from?.endsWith('/ben') === true);
    expect(seen.getChild('x', MUC_USER)!.getChild('item')!.attrs.role).to.equal('participant');
    const self = await ben.next((el) => el.name === 'presence' && statusesOf(el).includes(110));
    expect(self.getChild('x', MUC_USER)!.getChild('item')!.attrs.role).to.equal('participant');
    ann.clear();
    await changeRoom(kit, 'lv-aud', { presenters: [] });
    const back = await ann.next((el) => el.name === 'presence' && el.attrs.from?.endsWith('/ben') === true);
    expect(back.getChild('x', MUC_USER)!.getChild('item')!.attrs.role).to.equal('visitor');
  });

  it('a room turned into an auditorium is announced (104) and non-presenters become visitors', async () => {
    await seedRoom(kit, { room: 'lv-kind', category: 'Lv Cat', privacy: 'open' });
    const ann = await kit.client('lv-ann@localhost', 'k');
    await ann.join('lv-kind', 'ann');
    ann.clear();
    await changeRoom(kit, 'lv-kind', { type: 'auditorium' });
    const self = await ann.next((el) => el.name === 'presence' && statusesOf(el).includes(110));
    expect(self.getChild('x', MUC_USER)!.getChild('item')!.attrs.role).to.equal('visitor');
    await ann.next((el) => el.name === 'message' && statusesOf(el).includes(104));
  });

  it('persistent chat turned off for a user: removed from the room (321), then refused as if the room did not exist', async () => {
    await seedRoom(kit, { room: 'lv-policy', category: 'Lv Cat', privacy: 'open' });
    const fay = await kit.client('lv-fay@localhost', 'pol');
    await fay.join('lv-policy', 'fay');
    await kit.server.stores.chat.setPolicy('user', 'lv-fay@localhost', false);
    await chatModel(kit.server).publish({ kind: 'policy' });
    try {
      expect(statusesOf(await gone(fay))).to.include(321);
      expect(conditionOf(await fay.join('lv-policy', 'fay'))).to.equal('item-not-found');
    } finally {
      await kit.server.stores.chat.setPolicy('user', 'lv-fay@localhost', null);
      await chatModel(kit.server).publish({ kind: 'policy' });
    }
    expect(statusesOf(await fay.join('lv-policy', 'fay'))).to.include(110);
  });
});
