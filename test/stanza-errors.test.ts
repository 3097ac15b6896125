import { expect } from 'chai';
import { StanzaError, errorReply, parseStanzaError } from '../protocol/errors.js';
import { parseStanzaString } from '../protocol/xml-stream.js';

describe('errorReply (RFC 6120 §8.3)', () => {
  it('answers with the stanza name, id and swapped addresses, the payload kept', () => {
    const iq = parseStanzaString("<iq type='get' id='1' from='a@b/c' to='d@e'><query xmlns='urn:x'/></iq>")!;
    const reply = errorReply(iq, new StanzaError('item-not-found'))!;
    expect(reply.attrs).to.deep.equal({ type: 'error', id: '1', to: 'a@b/c', from: 'd@e' });
    expect(reply.getChild('query', 'urn:x')).to.not.equal(undefined);
    expect(parseStanzaError(reply)?.condition).to.equal('item-not-found');
  });

  it('never answers an error', () => {
    const msg = parseStanzaString("<message type='error'><error type='cancel'/></message>")!;
    expect(errorReply(msg, new StanzaError('bad-request'))).to.equal(null);
  });

  // Found by fuzzing: a stanza of another type carrying an <error/> gave a reply with two, and the
  // receiver read the first, which was not the server's.
  it('leaves out an <error/> the stanza carried, so that the reply holds exactly one', () => {
    const msg = parseStanzaString("<message type='chat'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error><body>x</body></message>")!;
    const reply = errorReply(msg, new StanzaError('bad-request'))!;
    expect(reply.getChildren('error').length).to.equal(1);
    expect(parseStanzaError(parseStanzaString(reply.toString())!)?.condition).to.equal('bad-request');
    expect(reply.getChild('body')).to.not.equal(undefined);
  });
});
