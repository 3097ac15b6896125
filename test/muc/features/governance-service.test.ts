// The service under the persistent-chat model: disco#items lists plain public rooms and the governed
// rooms the requester may see (paged as before), disco#info carries the service settings form, and a
// user who may create in no category cannot create a room.
import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { governedKit, seedCategory, seedRoom, seedSettings, conditionOf, SERVICE, type RoomKit, type FakeClient } from '../kit.js';

async function items(c: FakeClient, max?: number, after?: string): Promise<{ jids: string[]; count?: string; reply: Element }> {
  const q = new Element('query', { xmlns: 'http://jabber.org/protocol/disco#items' });
  if (max !== undefined) {
    const set = q.c('set', { xmlns: 'http://jabber.org/protocol/rsm' });
    set.c('max').t(String(max));
    if (after) set.c('after').t(after);
  }
  const reply = await c.iq('get', SERVICE, q);
  const query = reply.getChild('query')!;
  return {
    jids: query.getChildren('item').map((i) => i.attrs.jid!),
    count: query.getChild('set', 'http://jabber.org/protocol/rsm')?.getChildText('count'),
    reply,
  };
}

describe('room feature: governance, the service', () => {
  let kit: RoomKit;
  before(async function () {
    this.timeout(60000);
    kit = await governedKit();
    await seedCategory(kit, { name: 'Sv Cat', allowed: ['sv-ann@localhost', 'sv-ben@localhost'] });
    await seedRoom(kit, { room: 'sv-a-closed', category: 'Sv Cat', name: 'Closed one', members: ['sv-ann@localhost'] });
    await seedRoom(kit, { room: 'sv-b-secret', category: 'Sv Cat', privacy: 'secret', members: ['sv-ann@localhost'] });
    await seedRoom(kit, { room: 'sv-c-off', category: 'Sv Cat', privacy: 'open', disabled: true });
    await kit.server.stores.rooms.put({
      service: SERVICE, name: 'sv-d-plain', config: { persistent: true, public: true, name: 'Plain' }, affiliations: {}, subject: null, createdAt: new Date(), persistent: true,
    });
  });

  it('disco#items: plain public rooms for everyone, governed rooms for those who may see them', async () => {
    const ann = await kit.client('sv-ann@localhost');
    const annSees = (await items(ann)).jids.filter((j) => j.startsWith('sv-'));
    expect(annSees).to.deep.equal(['sv-a-closed', 'sv-b-secret', 'sv-d-plain'].map((r) => `${r}@${SERVICE}`));
    const ben = await kit.client('sv-ben@localhost');
    expect((await items(ben)).jids.filter((j) => j.startsWith('sv-'))).to.deep.equal(['sv-a-closed', 'sv-d-plain'].map((r) => `${r}@${SERVICE}`));
    const out = await kit.client('sv-out@localhost');
    expect((await items(out)).jids.filter((j) => j.startsWith('sv-'))).to.deep.equal([`sv-d-plain@${SERVICE}`]);
    const named = (await items(ann)).reply.getChild('query')!.getChildren('item').find((i) => i.attrs.jid === `sv-a-closed@${SERVICE}`);
    expect(named!.attrs.name).to.equal('Closed one');
  });

  it('disco#items pages with RSM over both kinds, with the count of what the requester sees', async () => {
    const ann = await kit.client('sv-ann@localhost', 'page');
    const all = (await items(ann)).jids;
    const first = await items(ann, 2);
    expect(first.jids).to.deep.equal(all.slice(0, 2));
    expect(first.count).to.equal(String(all.length));
    const second = await items(ann, 2, first.jids[1]);
    expect(second.jids).to.deep.equal(all.slice(2, 4));
  });

  it('disco#info: the category feature and the chat-service settings form', async () => {
    await seedSettings(kit, { roomManagementUrl: 'https://rooms.example.org/' });
    const ann = await kit.client('sv-ann@localhost', 'info');
    const info = await ann.iq('get', SERVICE, new Element('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    const q = info.getChild('query')!;
    expect(q.getChildren('feature').map((f) => f.attrs.var)).to.include('urn:x-perch:category:0');
    const form = q.getChildren('x', 'jabber:x:data').find((x) => x.getChildren('field').some((f) => f.getChildText('value') === 'urn:x-perch:chat-service:0'))!;
    const value = (v: string) => form.getChildren('field').find((f) => f.attrs.var === v)?.getChildText('value');
    expect(value('default-history')).to.equal('30');
    expect(value('max-file-size-kb')).to.equal('20000');
    expect(value('participant-update-limit')).to.equal('75');
    expect(value('room-management-url')).to.equal('https://rooms.example.org/');
  });

  it('a user who may create in no category gets not-allowed when creating a room', async () => {
    const out = await kit.client('sv-out@localhost', 'create');
    expect(conditionOf(await out.join('sv-new-room', 'me'))).to.equal('not-allowed');
  });

  it('a plain room on a governed service keeps plain XEP-0045 behaviour (stored affiliations count)', async () => {
    const stored = await kit.server.stores.rooms.get(SERVICE, 'sv-d-plain');
    await kit.server.stores.rooms.put({ ...stored!, affiliations: { 'sv-boss@localhost': 'owner' } });
    const boss = await kit.client('sv-boss@localhost');
    const self = await boss.join('sv-d-plain', 'boss');
    expect(self.getChild('x', 'http://jabber.org/protocol/muc#user')!.getChild('item')!.attrs.affiliation).to.equal('owner');
    const anyone = await kit.client('sv-out@localhost', 'plain');
    const other = await anyone.join('sv-d-plain', 'anyone');
    expect(other.getChild('x', 'http://jabber.org/protocol/muc#user')!.getChild('item')!.attrs.role).to.equal('participant');
  });
});
