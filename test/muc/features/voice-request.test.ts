import { expect } from 'chai';
import { Element } from '../../../protocol/xml.js';
import { sharedKit, createRoom, roomJid, type RoomKit } from '../kit.js';

describe('room feature: voice-request', () => {
  let kit: RoomKit;
  before(async function () { this.timeout(60000); kit = await sharedKit(); });

  it('passes a visitor\'s request to the moderators, who grant voice by submitting the form', async () => {
    const owner = await kit.client('vr-owner@localhost');
    await createRoom(owner, 'vr1', { 'muc#roomconfig_moderatedroom': '1' });
    const visitor = await kit.client('vr-visitor@localhost');
    await visitor.join('vr1', 'visitor');
    const request = new Element('message', { to: roomJid('vr1') });
    const x = request.c('x', { xmlns: 'jabber:x:data', type: 'submit' });
    x.c('field', { var: 'FORM_TYPE' }).c('value').t('http://jabber.org/protocol/muc#request');
    x.c('field', { var: 'muc#role' }).c('value').t('participant');
    visitor.send(request);
    const form = await owner.next((el) => el.name === 'message' && el.getChild('x', 'jabber:x:data') !== undefined);
    const fields = form.getChild('x', 'jabber:x:data')!.getChildren('field');
    expect(fields.find((f) => f.attrs.var === 'muc#roomnick')!.getChildText('value')).to.equal('visitor');

    const approve = new Element('message', { to: roomJid('vr1') });
    const a = approve.c('x', { xmlns: 'jabber:x:data', type: 'submit' });
    a.c('field', { var: 'FORM_TYPE' }).c('value').t('http://jabber.org/protocol/muc#request');
    a.c('field', { var: 'muc#roomnick' }).c('value').t('visitor');
    a.c('field', { var: 'muc#request_allow' }).c('value').t('true');
    owner.send(approve);
    const voiced = await visitor.next((el) => el.name === 'presence'
      && el.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChild('item')?.attrs.role === 'participant');
    expect(voiced.attrs.from).to.equal(`${roomJid('vr1')}/visitor`);
  });
});
