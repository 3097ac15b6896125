// Principals (user JIDs, group:, ou:, domain:) as admins write them in lists: only PrincipalError for
// bad input, the canonical key parses back to the same principal, and canonicalisation is idempotent.
import { check, expectOnly, type FuzzTarget } from '../target.js';
import { same } from './common.js';

export const principalTarget: FuzzTarget = {
  name: 'principal',
  files: ['principal'],
  maxLen: 1024,
  dictionary: ['group:', 'ou:', 'domain:', 'GROUP:', 'Ou:', '/', '//', '/corp/emea', '@', 'user@example.com', 'example.com', ',',
    '+', '-', ' ', '\t', 'a'.repeat(257), '\u00DF', 'I\u0307', '\u0130', 'x'.repeat(64)],
  setup(p) {
    const { parsePrincipal, principalKey, principalOfKey, canonicalPrincipal, parseListEdit, applyListEdit, PrincipalError } = p.principal;
    return (data) => {
      const text = data.toString('utf8');
      try {
        const principal = parsePrincipal(text);
        const key = principalKey(principal);
        check(same(principalOfKey(key), principal), `key ${JSON.stringify(key)} does not give back ${JSON.stringify(principal)}`);
        let again: string;
        try {
          again = canonicalPrincipal(key);
        } catch (err) {
          throw new Error(`canonical ${JSON.stringify(key)} (of ${JSON.stringify(text)}) is refused: ${(err as Error).message}`);
        }
        check(again === key, `not idempotent: ${JSON.stringify(text)} -> ${key} -> ${again}`);
      } catch (err) {
        expectOnly(err, PrincipalError);
      }
      try {
        const edit = parseListEdit(text.split('\n'));
        const list = applyListEdit(['user@example.com'], edit);
        if (edit.clear) check(list === null, 'a clear edit left a list');
        else check(list !== null && new Set(list).size === list.length, 'an edit made a list with duplicates');
      } catch (err) {
        expectOnly(err, PrincipalError);
      }
    };
  },
};
