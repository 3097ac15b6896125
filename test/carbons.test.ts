import { expect } from 'chai';
import { NS } from '../protocol/namespaces.js';
import { carbonCopy, carbonsEligible } from '../src/modules/carbons.js';
import { xml as parse } from './xml.js';


describe('carbons: eligibility (XEP-0280 §5)', () => {
  it('copies chat, and normal with a body', () => {
    expect(carbonsEligible(parse("<message type='chat'><body>x</body></message>"))).to.equal(true);
    expect(carbonsEligible(parse("<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"))).to.equal(true);
    expect(carbonsEligible(parse('<message><body>x</body></message>'))).to.equal(true);
    expect(carbonsEligible(parse("<message type='normal'/>"))).to.equal(false);
  });
  it('skips groupchat, headline, error, MUC private messages, private and no-copy, and carbons', () => {
    for (const xml of [
      "<message type='groupchat'><body>x</body></message>",
      "<message type='headline'><body>x</body></message>",
      "<message type='error'><body>x</body></message>",
      "<message type='chat'><body>x</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>",
      "<message type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>",
      "<message type='chat'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>",
      "<message type='chat'><received xmlns='urn:xmpp:carbons:2'/></message>",
      "<message type='chat'><sent xmlns='urn:xmpp:carbons:2'/></message>",
      "<message><body xmlns='urn:example:not-a-body'>x</body></message>",
    ]) expect(carbonsEligible(parse(xml)), xml).to.equal(false);
  });
});

describe('carbons: wrapper (XEP-0280 §6, §7)', () => {
  it('comes from the bare JID and forwards the original in jabber:client', () => {
    const original = parse("<message from='j@x/a' to='r@y/b' type='chat'><body>hi</body></message>");
    const copy = carbonCopy('received', original, 'r@y', 'r@y/c');
    expect(copy.attrs).to.include({ from: 'r@y', to: 'r@y/c', type: 'chat' });
    const reparsed = parse(copy.toString());
    const inner = reparsed.getChild('received', NS.carbons)!.getChild('forwarded', NS.forward)!.getChild('message', NS.client)!;
    expect(inner.attrs).to.include({ from: 'j@x/a', to: 'r@y/b' });
    expect(inner.getChildText('body', NS.client)).to.equal('hi');
  });
});
