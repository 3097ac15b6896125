// Data forms (XEP-0004) and their readers: parseForm throws only Error for a malformed form, and a form
// it accepts rebuilds (buildForm) into one that parses to the same thing; the caps hash (XEP-0115) of a
// disco#info query, the pubsub node configuration form (XEP-0060) and the search fields read forms
// without any other exception.
import { check, expectOnly, type FuzzTarget } from '../target.js';
import { XML_TOKENS, elementOf, nsTokens, same } from './common.js';

export const formsTarget: FuzzTarget = {
  name: 'forms',
  files: ['forms', 'caps', 'pubsub', 'search'],
  maxLen: 4096,
  dictionary: [
    ...XML_TOKENS, "<x xmlns='jabber:x:data' type='submit'>", "<x xmlns='jabber:x:data' type='form'>", '</x>', '<field ', '</field>',
    'var=', "var='FORM_TYPE'", "type='hidden'", '<value>', '</value>', '<option>', '</option>', 'label=', '<title>', '<instructions>',
    '<reported>', '<item>', '<required/>', 'boolean', 'list-multi', 'list-single', 'jid-multi', 'jid-single', 'text-multi',
    'text-private', 'text-single', 'fixed', 'hidden', 'true', 'false', '0', '1', 'form', 'submit', 'cancel', 'result',
    "<query xmlns='http://jabber.org/protocol/disco#info'>", '<identity ', '<feature ', 'category=', 'name=',
    'pubsub#max_items', 'pubsub#access_model', 'pubsub#persist_items', 'max', 'open', 'whitelist',
    '{urn:x-perch:search:0}text', '{urn:x-perch:search:0}match', '{urn:x-perch:search:0}authors', '{urn:x-perch:search:0}rooms',
    ...nsTokens('jabber:x:data', 'http://jabber.org/protocol/disco#info', 'http://jabber.org/protocol/pubsub#node_config'),
  ],
  setup(p) {
    const { parseForm, buildForm, formValue, formValues, formType } = p.forms;
    const { capsVerOfQuery } = p.caps;
    const { parseConfigForm, PUBSUB } = p.pubsub;
    const { parseSearch, searchFieldNames } = p.search;
    const { StanzaError } = p.errors;
    const searchFields = searchFieldNames(true);
    return (data) => {
      const el = elementOf(p, data);
      if (!el) return;
      for (const x of [el, ...el.elements()]) {
        let form;
        try {
          form = parseForm(x);
        } catch (err) {
          expectOnly(err, Error);
          continue;
        }
        const rebuilt = buildForm(form);
        let again;
        try {
          again = parseForm(rebuilt);
        } catch (err) {
          throw new Error(`a form rebuilt from an accepted one is refused (${(err as Error).message}): ${rebuilt.toString()}`);
        }
        check(same(again, form), `a form does not survive buildForm: ${x.toString()} -> ${rebuilt.toString()}`);
        formType(form);
        for (const f of form.fields) if (f.var !== undefined) { formValue(form, f.var); formValues(form, f.var); }
        const extra: Record<string, string[]> = {};
        for (const f of form.fields) if (f.var !== undefined && searchFields.includes(f.var)) extra[f.var] = f.values;
        try { parseSearch(extra); } catch (err) { expectOnly(err, StanzaError); }
        try { parseConfigForm(x, PUBSUB.nodeConfig); } catch (err) { expectOnly(err, StanzaError); }
      }
      try {
        const ver = capsVerOfQuery(el);
        check(/^[A-Za-z0-9+/]{27}=$/.test(ver), `caps ver ${ver} is no SHA-1 in base64`);
      } catch (err) {
        expectOnly(err, Error);
      }
    };
  },
};
