import { expect } from 'chai';
import {
  FrameReader, NS_FRAMING, closeMessage, featuresMessage, hostMetaJson, hostMetaXrd, openMessage, openToStreamAttrs, qualify, streamErrorMessage,
} from '../protocol/framing.js';
import { Element } from '../protocol/xml.js';
import { isStreamRoot } from '../protocol/xml-stream.js';
import { streamErrorElement } from '../protocol/errors.js';

const LIMITS = { maxStanzaSize: 1024, maxDepth: 8 };
const STREAMS = 'http://etherx.jabber.org/streams';

describe('WebSocket framing (RFC 7395)', () => {
  it('reads <open/>, stanzas and <close/>, one element per message', () => {
    const r = new FrameReader(LIMITS);
    const open = r.read(`<open xmlns='${NS_FRAMING}' to='localhost' version='1.0'/>`);
    expect(open.kind).to.equal('open');
    const attrs = openToStreamAttrs((open as { el: Element }).el);
    expect(isStreamRoot('stream:stream', attrs)).to.equal(true);
    expect(attrs).to.include({ xmlns: 'jabber:client', to: 'localhost', version: '1.0' });
    const msg = r.read(Buffer.from("<message xmlns='jabber:client' to='a@localhost'><body>é</body></message>"));
    expect(msg.kind).to.equal('element');
    const el = (msg as { el: Element }).el;
    expect(el.ns).to.equal('jabber:client');
    expect(el.getChild('body')!.children).to.deep.equal(['é']);
    // A stanza without xmlns is still in the content namespace.
    expect((r.read("<iq type='get' id='1'/>") as { el: Element }).el.ns).to.equal('jabber:client');
    expect(r.read(`<close xmlns='${NS_FRAMING}'/>`).kind).to.equal('close');
  });

  it('refuses two elements, a partial element, text, and an over-size stanza', () => {
    expect(new FrameReader(LIMITS).read("<iq type='get' id='1'/><iq type='get' id='2'/>")).to.include({ kind: 'error', condition: 'not-well-formed' });
    expect(new FrameReader(LIMITS).read("<message><body>")).to.include({ kind: 'error', condition: 'not-well-formed' });
    expect(new FrameReader(LIMITS).read('hello')).to.include({ kind: 'error', condition: 'not-well-formed' });
    expect(new FrameReader(LIMITS).read(`<message><body>${'x'.repeat(2000)}</body></message>`)).to.include({ kind: 'error', condition: 'policy-violation' });
    expect(new FrameReader(LIMITS).read('<a><b><c><d><e><f><g><h><i><j/></i></h></g></f></e></d></c></b></a>')).to.include({ kind: 'error', condition: 'policy-violation' });
    // After an error the reader stays failed.
    const r = new FrameReader(LIMITS);
    r.read('<x>');
    expect(r.read("<iq type='get' id='1'/>").kind).to.equal('error');
  });

  it('writes <open/>, <close/>, features and stream errors with their namespaces declared', () => {
    expect(openMessage({ id: 'abc', from: 'localhost', version: '1.0', lang: 'en' }))
      .to.equal(`<open xmlns='${NS_FRAMING}' id='abc' from='localhost' version='1.0' xml:lang='en'/>`);
    expect(closeMessage()).to.equal(`<close xmlns='${NS_FRAMING}'/>`);
    const f = new Element('features', {}, [], STREAMS);
    f.c('bind', { xmlns: 'urn:ietf:params:xml:ns:xmpp-bind' });
    const features = featuresMessage(f);
    expect(features).to.match(/^<stream:features xmlns:stream='http:\/\/etherx.jabber.org\/streams'>/);
    const reread = new FrameReader(LIMITS).read(features) as { el: Element };
    expect(reread.el.ns).to.equal(STREAMS);
    const err = new FrameReader(LIMITS).read(streamErrorMessage(streamErrorElement('policy-violation', 'too big'))) as { el: Element };
    expect(err.el.name).to.equal('error');
    expect(err.el.ns).to.equal(STREAMS);
    expect(err.el.getChild('policy-violation', 'urn:ietf:params:xml:ns:xmpp-streams')).to.not.equal(undefined);
  });

  it('gives top-level stanzas the content namespace when they name none', () => {
    expect(qualify("<message to='a@b'><body>x</body></message>")).to.equal("<message xmlns='jabber:client' to='a@b'><body>x</body></message>");
    expect(qualify('<presence/>')).to.equal("<presence xmlns='jabber:client'/>");
    expect(qualify("<iq xmlns='jabber:client' type='get'/>")).to.equal("<iq xmlns='jabber:client' type='get'/>");
    expect(qualify("<a xmlns='urn:xmpp:sm:3' h='1'/>")).to.equal("<a xmlns='urn:xmpp:sm:3' h='1'/>");
    expect(qualify("<stream:features xmlns:stream='x'/>")).to.equal("<stream:features xmlns:stream='x'/>");
  });

  it('describes the WebSocket endpoint in host-meta (XEP-0156)', () => {
    const url = "wss://chat.example.org/xmpp-websocket?a=1&b='2'";
    expect(hostMetaXrd(url)).to.contain(`<Link rel='urn:xmpp:alt-connections:websocket' href='wss://chat.example.org/xmpp-websocket?a=1&amp;b=&apos;2&apos;'/>`);
    expect(JSON.parse(hostMetaJson(url))).to.deep.equal({ links: [{ rel: 'urn:xmpp:alt-connections:websocket', href: url }] });
  });
});
