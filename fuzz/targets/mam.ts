// Message archive queries (XEP-0313) with result set management (XEP-0059): only StanzaError (MamError,
// RsmError) for bad input; dates and JIDs it returns are valid; RSM counts are within xs:int.
import { check, expectOnly, type FuzzTarget } from '../target.js';
import { XML_TOKENS, elementOf, nsTokens } from './common.js';

export const mamTarget: FuzzTarget = {
  name: 'mam',
  files: ['mam', 'rsm'],
  maxLen: 4096,
  dictionary: [
    ...XML_TOKENS, "<query xmlns='urn:xmpp:mam:2' queryid='q1'>", '</query>', "<x xmlns='jabber:x:data' type='submit'>", '</x>',
    "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>", '<field var=', '<value>', '</value>', 'start', 'end',
    'with', 'before-id', 'after-id', 'ids', '{urn:xmpp:fulltext:0}fulltext', '{urn:x-perch:search:0}text', '<flip-page/>',
    "<set xmlns='http://jabber.org/protocol/rsm'>", '</set>', '<max>', '</max>', '<index>', '<after>', '<before>', '<before/>',
    '2147483647', '2147483648', '+', '-1', ' ', '2010-06-07T00:00:00Z', 'juliet@capulet.lit', 'node=',
    ...nsTokens('urn:xmpp:mam:2', 'http://jabber.org/protocol/rsm', 'jabber:x:data'),
  ],
  setup(p) {
    const { parseMamQuery } = p.mam;
    const { parseRsm } = p.rsm;
    const { StanzaError } = p.errors;
    const { tryParseJid } = p.jid;
    const extra = ['{urn:x-perch:search:0}text'];
    return (data) => {
      const el = elementOf(p, data);
      if (!el) return;
      for (const q of [el, ...el.elements()]) {
        try {
          const query = parseMamQuery(q, extra);
          for (const d of [query.start, query.end]) if (d) check(!Number.isNaN(d.getTime()), 'an invalid Date in a query');
          if (query.with !== undefined) check(tryParseJid(query.with)?.toString() === query.with, `with=${query.with} is not a prepared JID`);
          for (const n of [query.rsm.max, query.rsm.index]) if (n !== undefined) check(Number.isInteger(n) && n >= 0 && n <= 2 ** 31 - 1, `RSM count ${n}`);
        } catch (err) {
          expectOnly(err, StanzaError);
        }
        try {
          const rsm = parseRsm(q);
          for (const n of [rsm.max, rsm.index]) if (n !== undefined) check(Number.isInteger(n) && n >= 0 && n <= 2 ** 31 - 1, `RSM count ${n}`);
        } catch (err) {
          expectOnly(err, StanzaError);
        }
      }
    };
  },
};
