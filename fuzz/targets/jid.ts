// JID parsing (RFC 7622): only JidError for bad input, and a parsed JID prints to a string that parses
// back to the same JID (preparation is idempotent).
import { check, expectOnly, type FuzzTarget } from '../target.js';

export const jidTarget: FuzzTarget = {
  name: 'jid',
  files: ['jid'],
  maxLen: 4200,
  dictionary: [
    '@', '/', '.', '[', ']', '::', ':', 'example.com', 'user', 'res', '\u00DF', 'I\u0307', '\uFF0E', '\u3002',
    '\u212B', '\uFB01', '\u0130', 'xn--', 'localhost', '127.0.0.1', '[::1]', '[fe80::1%25]', '-', '\u200D',
    '\u05D0', '\uFF21', 'a'.repeat(63), 'b'.repeat(64), '\u00A0', '\u0000', '\uD800', '\uFFFD',
  ],
  setup(p) {
    const { parseJid, tryParseJid, JidError } = p.jid;
    return (data) => {
      const s = data.toString('utf8');
      let j;
      try {
        j = parseJid(s);
      } catch (err) {
        expectOnly(err, JidError);
        check(tryParseJid(s) === null, 'tryParseJid accepts what parseJid refuses');
        return;
      }
      const text = j.toString();
      let again;
      try {
        again = parseJid(text);
      } catch (err) {
        throw new Error(`${JSON.stringify(s)} parses to ${JSON.stringify(text)}, which does not parse: ${(err as Error).message}`);
      }
      check(again.equals(j) && again.toString() === text,
        `not idempotent: ${JSON.stringify(s)} -> ${JSON.stringify(text)} -> ${JSON.stringify(again.toString())}`);
      check(j.bare().toString() === j.bareString() && parseJid(j.bareString()).equals(j.bare()), `bare JID of ${JSON.stringify(text)} is inconsistent`);
      for (const part of [j.local, j.domain, j.resource]) check(Buffer.byteLength(part) <= 1023, `a part longer than 1023 bytes in ${JSON.stringify(text)}`);
      check(j.domain !== '', 'empty domain accepted');
    };
  },
};
