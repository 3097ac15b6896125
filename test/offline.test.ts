import { expect } from 'chai';
import { NS } from '../protocol/namespaces.js';
import { offlineDecision, presencePriority, withOfflineDelay } from '../src/modules/offline.js';
import { xml as parse } from './xml.js';


describe('offline: what is stored (XEP-0160 §3, XEP-0334)', () => {
  it('stores chat and normal messages with content', () => {
    expect(offlineDecision(parse("<message type='chat'><body>hi</body></message>"))).to.equal('store');
    expect(offlineDecision(parse('<message><body>hi</body></message>'))).to.equal('store');
    expect(offlineDecision(parse("<message type='chat'><received xmlns='urn:xmpp:receipts' id='1'/></message>"))).to.equal('store');
  });
  it('ignores chat-state-only and empty messages', () => {
    expect(offlineDecision(parse("<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"))).to.equal('ignore');
    expect(offlineDecision(parse("<message type='chat'/>"))).to.equal('ignore');
  });
  it('follows the storage hints', () => {
    expect(offlineDecision(parse("<message type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>"))).to.equal('refuse');
    expect(offlineDecision(parse("<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/><store xmlns='urn:xmpp:hints'/></message>"))).to.equal('store');
  });
  it('refuses headline and groupchat', () => {
    expect(offlineDecision(parse("<message type='headline'><body>x</body></message>"))).to.equal('refuse');
    expect(offlineDecision(parse("<message type='groupchat'><body>x</body></message>"))).to.equal('refuse');
  });
});

describe('offline: stored form', () => {
  it('adds a XEP-0203 delay from the domain and survives a round trip', () => {
    const original = parse("<message from='a@x/r' to='b@x' type='chat'><body>hi &amp; bye</body></message>");
    const stored = withOfflineDelay(original, 'x', new Date('2020-01-02T03:04:05.678Z'));
    expect(original.getChild('delay', NS.delay)).to.equal(undefined);
    const back = parse(stored.toString());
    const delay = back.getChild('delay', NS.delay)!;
    expect(delay.attrs).to.include({ from: 'x', stamp: '2020-01-02T03:04:05Z' });
    expect(back.getChildText('body', NS.client)).to.equal('hi & bye');
    expect(back.attrs).to.include({ from: 'a@x/r', to: 'b@x', type: 'chat' });
  });
});

describe('offline: presence priority', () => {
  it('reads RFC 6121 priorities, 0 when absent or invalid', () => {
    expect(presencePriority(parse('<presence/>'))).to.equal(0);
    expect(presencePriority(parse('<presence><priority>-1</priority></presence>'))).to.equal(-1);
    expect(presencePriority(parse('<presence><priority>5</priority></presence>'))).to.equal(5);
    expect(presencePriority(parse('<presence><priority>999</priority></presence>'))).to.equal(0);
    expect(presencePriority(parse('<presence><priority>x</priority></presence>'))).to.equal(0);
  });
});
