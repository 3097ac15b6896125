// Stanza errors (RFC 6120 §8.3) and the HTTP upload slot request (XEP-0363): parseStanzaError reads any
// stanza without throwing; an error reply is never made to an error (no loops) and carries the condition
// it was made with; a slot request is refused only with StanzaError and an accepted one is sane.
import { check, expectOnly, type FuzzTarget } from '../target.js';
import { XML_TOKENS, elementOf, nsTokens } from './common.js';

export const stanzaErrorsTarget: FuzzTarget = {
  name: 'stanza-errors',
  files: ['errors', 'http-upload'],
  maxLen: 4096,
  dictionary: [
    ...XML_TOKENS, "<iq type='get' id='1'>", "<iq type='error'>", "<iq type='result'>", '<message ', '<presence ', "type='error'",
    '<error ', '</error>', '<text ', '</text>', '<bad-request ', '<item-not-found ', '<request ', 'filename=', 'size=',
    'content-type=', '<room ', 'jid=', 'image/png', 'text/plain; charset="utf-8"', '..', '/', '\\', '9007199254740993',
    ...nsTokens('urn:ietf:params:xml:ns:xmpp-stanzas', 'urn:xmpp:http:upload:0', 'urn:x-perch:upload:0'),
  ],
  setup(p) {
    const { parseStanzaError, errorReply, StanzaError } = p.errors;
    const { parseSlotRequest } = p.httpUpload;
    const { parseStanzaString } = p.xmlStream;
    return (data) => {
      const el = elementOf(p, data);
      if (!el) return;
      parseStanzaError(el);
      const reply = errorReply(el, new StanzaError('bad-request', 'fuzz'));
      if (el.attrs.type === 'error') check(reply === null, 'an error reply to an error');
      if (reply) {
        const back = parseStanzaString(reply.toString());
        check(back !== null && parseStanzaError(back)?.condition === 'bad-request', `an error reply does not carry its condition: ${reply.toString()}`);
      }
      try {
        const req = parseSlotRequest(el);
        check(req.filename !== '' && !/[/\\\u0000-\u001f]/.test(req.filename), `filename ${JSON.stringify(req.filename)} accepted`);
        check(Number.isSafeInteger(req.size) && req.size > 0, `size ${req.size} accepted`);
      } catch (err) {
        expectOnly(err, StanzaError);
      }
    };
  },
};
