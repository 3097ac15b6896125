// XMPP over WebSocket framing (RFC 7395): the frame reader answers every message with a frame or an
// error frame and never throws; after an error it stays failed; qualify gives a start tag without a
// namespace the content namespace and changes nothing else.
import { check, type FuzzTarget } from '../target.js';
import { XML_TOKENS, nsTokens } from './common.js';

export const framingTarget: FuzzTarget = {
  name: 'framing',
  files: ['framing', 'xml-stream'],
  maxLen: 4096,
  dictionary: [
    ...XML_TOKENS, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>",
    "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", '<message>', '</message>', '<iq/>', '\n',
    ...nsTokens('urn:ietf:params:xml:ns:xmpp-framing', 'jabber:client', 'jabber:server'),
  ],
  setup(p) {
    const { FrameReader, qualify, openToStreamAttrs } = p.framing;
    const { parseStanzaString } = p.xmlStream;
    return (data) => {
      // Each line is one WebSocket message.
      const reader = new FrameReader({ maxStanzaSize: 2048, maxDepth: 8 });
      let failed = false;
      for (const message of data.toString('utf8').split('\n')) {
        const frame = reader.read(message);
        if (failed) check(frame.kind === 'error', 'a frame after an error');
        if (frame.kind === 'error') failed = true;
        else if (frame.kind === 'open') openToStreamAttrs(frame.el);
        // qualify is for one serialised element, which is what a frame of kind element holds.
        const q = qualify(message);
        if (frame.kind === 'element' && q !== message) {
          const el = parseStanzaString(q, 'urn:x-fuzz:other');
          const plain = parseStanzaString(message);
          check((el === null) === (plain === null), `qualify changed whether ${JSON.stringify(message)} parses`);
          if (el && plain) check(el.ns === 'jabber:client' && el.toString().replace(" xmlns='jabber:client'", '') === plain.toString(),
            `qualify changed more than the namespace of ${JSON.stringify(message)}`);
        }
      }
    };
  },
};
