import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, roomJid, conditionOf, statusesOf, type RoomKit } from '../kit.js';

function registration(nick: string): Element {
  const q = new Element('query', { xmlns: 'jabber:iq:register' });
  const x = q.c('x', { xmlns: 'jabber:x:data', type: 'submit' });
  x.c('field', { var: 'FORM_TYPE' }).c('value').t('http://jabber.org/protocol/muc#register');
  x.c('field', { var: 'muc#register_roomnick' }).c('value').t(nick);
  return q;
}

describe('room feature: register', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('lets a member reserve a nick that nobody else may then take, and tells the member it (§7.12)', async () => {
    const owner = await kit.client('rg-owner@localhost');
    await createRoom(owner, 'rg1');
    const admin = new Element('query', { xmlns: 'http://jabber.org/protocol/muc#admin' });
    admin.c('item', { jid: 'rg-member@localhost', affiliation: 'member' });
    await owner.iq('set', roomJid('rg1'), admin);
    const member = await kit.client('rg-member@localhost');
    const stranger = await kit.client('rg-stranger@localhost');
    expect(conditionOf(await stranger.iq('set', roomJid('rg1'), registration('x')))).to.equal('registration-required');
    expect((await member.iq('set', roomJid('rg1'), registration('Tess'))).attrs.type).to.equal('result');
    const info = await member.iq('get', roomJid('rg1'), new Element('query', { xmlns: 'http://jabber.org/protocol/disco#info', node: 'x-roomuser-item' }));
    expect(info.getChild('query')!.getChild('identity')!.attrs.name).to.equal('Tess');
    expect(conditionOf(await stranger.join('rg1', 'Tess'))).to.equal('conflict');
    expect(statusesOf(await member.join('rg1', 'Tess'))).to.include(110);
  });
});
