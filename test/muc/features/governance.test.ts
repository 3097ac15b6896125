// Rooms under the persistent-chat model: joins, affiliations, posts, archive and disco follow the
// access rules (src/pchat/access.ts) with the conditions and texts of docs/persistent-chat.md.
import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { chatModel } from '../../../src/pchat/module.js';
import {
  governedKit, seedCategory, seedRoom, seedGroup, roomJid, conditionOf, statusesOf, say, heard, settle, SERVICE, type RoomKit, type FakeClient,
} from '../kit.js';

const MUC_USER = 'http://jabber.org/protocol/muc#user';

function errorText(el: Element): string | undefined {
  return el.getChild('error')?.getChildText('text', 'urn:ietf:params:xml:ns:xmpp-stanzas');
}

function itemOf(presence: Element): Element {
  return presence.getChild('x', MUC_USER)!.getChild('item')!;
}

function discoInfo(c: FakeClient, room: string): Promise<Element> {
  return c.iq('get', roomJid(room), new Element('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
}

function fieldOf(info: Element, name: string): string | undefined {
  for (const x of info.getChild('query')?.getChildren('x', 'jabber:x:data') ?? []) {
    const f = x.getChildren('field').find((e) => e.attrs.var === name);
    if (f) return f.getChildText('value') ?? '';
  }
  return undefined;
}

function features(info: Element): string[] {
  return (info.getChild('query')?.getChildren('feature') ?? []).map((f) => f.attrs.var!);
}

describe('room feature: governance (persistent-chat rules)', () => {
  let kit: RoomKit;
  before(async function () {
    this.timeout(60000);
    kit = await governedKit();
    await seedGroup(kit, 'gv-sales', ['gv-alice@localhost', 'gv-bob@localhost', 'gv-carol@localhost', 'gv-denied@localhost']);
    await seedCategory(kit, { name: 'Gv Sales', allowed: ['group:gv-sales'], denied: ['gv-denied@localhost'], fileUpload: false });
    await seedRoom(kit, { room: 'gv-closed', category: 'Gv Sales', name: 'Sales desk', description: 'Deals', members: ['gv-alice@localhost', 'group:gv-leads'], managers: ['gv-bob@localhost'] });
    await seedRoom(kit, { room: 'gv-secret', category: 'Gv Sales', privacy: 'secret', members: ['gv-alice@localhost'] });
    await seedRoom(kit, { room: 'gv-open', category: 'Gv Sales', privacy: 'open' });
    await seedRoom(kit, { room: 'gv-off', category: 'Gv Sales', privacy: 'open', disabled: true });
    await seedRoom(kit, { room: 'gv-aud', category: 'Gv Sales', privacy: 'open', type: 'auditorium', presenters: ['gv-alice@localhost'], managers: ['gv-bob@localhost'] });
  });

  it('lets a member into a closed room as member; refuses in-scope non-members (registration-required) and those out of scope (item-not-found)', async () => {
    const alice = await kit.client('gv-alice@localhost');
    const self = await alice.join('gv-closed', 'alice');
    expect(statusesOf(self)).to.include(110);
    expect(itemOf(self).attrs.affiliation).to.equal('member');
    expect(itemOf(self).attrs.role).to.equal('participant');

    const carol = await kit.client('gv-carol@localhost');
    const refused = await carol.join('gv-closed', 'carol');
    expect(conditionOf(refused)).to.equal('registration-required');
    expect(errorText(refused)).to.equal('this room is for its members only');

    const stranger = await kit.client('gv-out@localhost');
    expect(conditionOf(await stranger.join('gv-closed', 'out'))).to.equal('item-not-found');
    const denied = await kit.client('gv-denied@localhost');
    const outcast = await denied.join('gv-closed', 'denied');
    expect(conditionOf(outcast)).to.equal('forbidden');
    expect(errorText(outcast)).to.equal('you are not allowed in rooms of this category');
    expect(conditionOf(await denied.join('gv-secret', 'denied'))).to.equal('item-not-found');
  });

  it('keeps a manager who is not a member out of a closed room, and an admin too', async () => {
    const bob = await kit.client('gv-bob@localhost');
    expect(conditionOf(await bob.join('gv-closed', 'bob'))).to.equal('registration-required');
    const admin = await kit.client('admin@localhost');
    expect(conditionOf(await admin.join('gv-closed', 'admin'))).to.equal('item-not-found');
  });

  it('open room: anyone in scope enters with no affiliation; the denied do not', async () => {
    const carol = await kit.client('gv-carol@localhost', 'open');
    const self = await carol.join('gv-open', 'carol');
    expect(itemOf(self).attrs.affiliation).to.equal('none');
    expect(itemOf(self).attrs.role).to.equal('participant');
    const denied = await kit.client('gv-denied@localhost', 'open');
    expect(conditionOf(await denied.join('gv-open', 'denied'))).to.equal('forbidden');
  });

  it('a disabled room refuses those who could see it with forbidden and a text', async () => {
    const carol = await kit.client('gv-carol@localhost', 'off');
    const refused = await carol.join('gv-off', 'carol');
    expect(conditionOf(refused)).to.equal('forbidden');
    expect(errorText(refused)).to.equal('this room is disabled');
  });

  it('secret room: item-not-found to non-members for joins and disco#info; members see the record in disco#info', async () => {
    const carol = await kit.client('gv-carol@localhost', 'secret');
    expect(conditionOf(await carol.join('gv-secret', 'carol'))).to.equal('item-not-found');
    expect(conditionOf(await discoInfo(carol, 'gv-secret'))).to.equal('item-not-found');
    const alice = await kit.client('gv-alice@localhost', 'secret');
    const info = await discoInfo(alice, 'gv-secret');
    expect(info.attrs.type).to.equal('result');
    expect(features(info)).to.include.members(['muc_membersonly', 'muc_hidden', 'urn:x-perch:category:0']);
    expect(features(info)).to.not.include.members(['muc_public', 'muc_open']);
  });

  it('disco#info of a closed room: identity and fields from the record', async () => {
    const carol = await kit.client('gv-carol@localhost', 'disco');
    const info = await discoInfo(carol, 'gv-closed');
    expect(info.getChild('query')!.getChild('identity')!.attrs.name).to.equal('Sales desk');
    expect(features(info)).to.include.members(['muc_membersonly', 'muc_public', 'muc_unmoderated']);
    expect(fieldOf(info, 'x-perch#category')).to.equal('Gv Sales');
    expect(fieldOf(info, 'x-perch#privacy')).to.equal('closed');
    expect(fieldOf(info, 'x-perch#type')).to.equal('normal');
    expect(fieldOf(info, 'x-perch#file-upload')).to.equal('0');
    expect(fieldOf(info, 'x-perch#history')).to.equal('1');
    expect(fieldOf(info, 'muc#roominfo_description')).to.equal('Deals');
    const out = await kit.client('gv-out@localhost', 'disco');
    expect(conditionOf(await discoInfo(out, 'gv-secret'))).to.equal('item-not-found');
  });

  it('auditorium: presenters participate, others are visitors, managers moderate; posting follows canPost', async () => {
    const alice = await kit.client('gv-alice@localhost', 'aud');
    expect(itemOf(await alice.join('gv-aud', 'alice')).attrs.role).to.equal('participant');
    const carol = await kit.client('gv-carol@localhost', 'aud');
    expect(itemOf(await carol.join('gv-aud', 'carol')).attrs.role).to.equal('visitor');
    const bob = await kit.client('gv-bob@localhost', 'aud');
    const bobSelf = await bob.join('gv-aud', 'bob');
    expect(itemOf(bobSelf).attrs.role).to.equal('moderator');
    expect(itemOf(bobSelf).attrs.affiliation).to.equal('owner');

    say(alice, 'gv-aud', 'from the stage');
    await heard(carol, 'from the stage');
    say(bob, 'gv-aud', 'manager speaking');
    const refused = await bob.next((el) => el.name === 'message' && el.attrs.type === 'error');
    expect(conditionOf(refused)).to.equal('forbidden');
    expect(errorText(refused)).to.equal('only presenters post in this auditorium');
    say(carol, 'gv-aud', 'from the floor');
    expect(conditionOf(await carol.next((el) => el.name === 'message' && el.attrs.type === 'error'))).to.equal('forbidden');
  });

  it('archive: members read it; in-scope non-members are forbidden; out of scope item-not-found', async () => {
    const mam = () => new Element('query', { xmlns: 'urn:xmpp:mam:2' });
    const alice = await kit.client('gv-alice@localhost', 'mam');
    expect((await alice.iq('set', roomJid('gv-closed'), mam())).attrs.type).to.equal('result');
    const carol = await kit.client('gv-carol@localhost', 'mam');
    expect(conditionOf(await carol.iq('set', roomJid('gv-closed'), mam()))).to.equal('forbidden');
    const out = await kit.client('gv-out@localhost', 'mam');
    expect(conditionOf(await out.iq('set', roomJid('gv-closed'), mam()))).to.equal('item-not-found');
  });

  it('muc#admin lists of a governed room come from the record, groups as principal items', async () => {
    const bob = await kit.client('gv-bob@localhost', 'lists');
    const ask = (affiliation: string) => {
      const q = new Element('query', { xmlns: 'http://jabber.org/protocol/muc#admin' });
      q.c('item', { affiliation });
      return bob.iq('get', roomJid('gv-closed'), q);
    };
    const members = await ask('member');
    expect(members.attrs.type).to.equal('result');
    const items = members.getChild('query')!.getChildren('item');
    expect(items.map((i) => i.attrs.jid ?? i.getChild('principal', 'urn:x-perch:principal:0')?.attrs.key)).to.have.members(['gv-alice@localhost', 'group:gv-leads']);
    const owners = await ask('owner');
    expect(owners.getChild('query')!.getChildren('item').map((i) => i.attrs.jid)).to.deep.equal(['gv-bob@localhost']);
    const carol = await kit.client('gv-carol@localhost', 'lists');
    const q = new Element('query', { xmlns: 'http://jabber.org/protocol/muc#admin' });
    q.c('item', { affiliation: 'member' });
    expect(conditionOf(await carol.iq('get', roomJid('gv-closed'), q))).to.equal('forbidden');
  });

  it('ignores the stored XEP-0045 affiliations of a governed room', async () => {
    const stored = await kit.server.stores.rooms.get(SERVICE, 'gv-closed');
    await kit.server.stores.rooms.put({ ...stored!, affiliations: { 'gv-carol@localhost': 'owner' } });
    const room = kit.service.loadedRoom('gv-closed');
    room?.affiliations.set('gv-carol@localhost', 'owner');
    const carol = await kit.client('gv-carol@localhost', 'stored');
    expect(conditionOf(await carol.join('gv-closed', 'carol'))).to.equal('registration-required');
    await settle(10);
  });

  it('disco#info shows the room\'s add-in and its URL', async () => {
    await kit.server.stores.chat.putAddin({ service: SERVICE, name: 'Gv Board', url: 'https://board.example.org/' });
    await chatModel(kit.server).publish({ kind: 'addin', service: SERVICE });
    await seedRoom(kit, { room: 'gv-addin', category: 'Gv Sales', privacy: 'open', addin: 'Gv Board' });
    const carol = await kit.client('gv-carol@localhost', 'addin');
    const info = await discoInfo(carol, 'gv-addin');
    expect(fieldOf(info, 'x-perch#addin')).to.equal('Gv Board');
    expect(fieldOf(info, 'x-perch#addin-url')).to.equal('https://board.example.org/');
  });
});
