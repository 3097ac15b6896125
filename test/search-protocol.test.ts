import { expect } from 'chai';
import { NS } from '../protocol/namespaces.js';
import { StanzaError } from '../protocol/errors.js';
import { parseMamQuery, mamQueryForm, FULLTEXT_FIELD } from '../protocol/mam.js';
import { parseForm } from '../protocol/forms.js';
import { SEARCH_FIELD, SEARCH_LIMITS, parseSearch, searchFieldNames, searchFormFields, authorJid } from '../protocol/search.js';
import { xml } from './xml.js';

function conditionOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof StanzaError) return e.condition;
    throw e;
  }
  return undefined;
}

const query = (fields: string) => xml(`<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>
  <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>${fields}</x></query>`);
const field = (name: string, ...values: string[]) => `<field var='${name}'>${values.map((v) => `<value>${v}</value>`).join('')}</field>`;

describe('search fields (urn:x-perch:search:0)', () => {
  it('names its fields in Clark notation in our namespace', () => {
    expect(NS.search).to.equal('urn:x-perch:search:0');
    expect(SEARCH_FIELD.text).to.equal('{urn:x-perch:search:0}text');
    expect(SEARCH_FIELD.caseSensitive).to.equal('{urn:x-perch:search:0}case-sensitive');
    expect(searchFieldNames(false)).to.not.include(SEARCH_FIELD.category);
    expect(searchFieldNames(true)).to.include.members([SEARCH_FIELD.category, SEARCH_FIELD.rooms]);
  });

  it('parses a query with our fields beside XEP-0431 fulltext', () => {
    const q = parseMamQuery(query(field(FULLTEXT_FIELD, 'kiwi') + field(SEARCH_FIELD.text, 'Release plan') + field(SEARCH_FIELD.match, 'exact') +
      field(SEARCH_FIELD.caseSensitive, 'true') + field(SEARCH_FIELD.authors, 'alice@Example.org', 'Bob', '') +
      field(SEARCH_FIELD.category, 'Sales') + field(SEARCH_FIELD.rooms, 'Room@conference.example.org')), searchFieldNames(true));
    expect(q.fulltext).to.equal('kiwi');
    expect(parseSearch(q.extra)).to.deep.equal({
      text: { text: 'Release plan', mode: 'exact', caseSensitive: true },
      authors: ['alice@Example.org', 'Bob'],
      category: 'Sales',
      rooms: ['room@conference.example.org'],
    });
  });

  it('defaults to all words, any case; a blank text asks for no text search', () => {
    expect(parseSearch({ [SEARCH_FIELD.text]: ['a b'] })).to.deep.equal({ text: { text: 'a b', mode: 'all', caseSensitive: false } });
    expect(parseSearch({ [SEARCH_FIELD.text]: ['  '] })).to.deep.equal({});
    expect(parseSearch({ [SEARCH_FIELD.text]: ['x'], [SEARCH_FIELD.caseSensitive]: ['0'] }).text?.caseSensitive).to.equal(false);
    expect(parseSearch(undefined)).to.deep.equal({});
  });

  it('refuses bad values with bad-request', () => {
    const bad = (extra: Record<string, string[]>) => conditionOf(() => parseSearch(extra));
    expect(bad({ [SEARCH_FIELD.text]: ['x'], [SEARCH_FIELD.match]: ['some'] })).to.equal('bad-request');
    expect(bad({ [SEARCH_FIELD.text]: ['x'], [SEARCH_FIELD.caseSensitive]: ['yes'] })).to.equal('bad-request');
    expect(bad({ [SEARCH_FIELD.text]: ['x', 'y'] })).to.equal('bad-request');
    expect(bad({ [SEARCH_FIELD.text]: ['x'.repeat(SEARCH_LIMITS.text + 1)] })).to.equal('bad-request');
    expect(bad({ [SEARCH_FIELD.match]: ['any'] })).to.equal('bad-request');
    expect(bad({ [SEARCH_FIELD.authors]: Array.from({ length: SEARCH_LIMITS.authors + 1 }, (_, i) => `n${i}`) })).to.equal('bad-request');
    expect(bad({ [SEARCH_FIELD.rooms]: ['room@conference.example.org/nick'] })).to.equal('bad-request');
    expect(bad({ [SEARCH_FIELD.rooms]: ['conference.example.org'] })).to.equal('bad-request');
    expect(bad({ [SEARCH_FIELD.category]: ['a', 'b'] })).to.equal('bad-request');
  });

  it('leaves fields not accepted to the MAM parser (feature-not-implemented)', () => {
    expect(conditionOf(() => parseMamQuery(query(field(SEARCH_FIELD.category, 'x')), searchFieldNames(false)))).to.equal('feature-not-implemented');
    expect(conditionOf(() => parseMamQuery(query(field(SEARCH_FIELD.text, 'x'))))).to.equal('feature-not-implemented');
  });

  it('tells real bare JIDs from nicks', () => {
    expect(authorJid('Alice@Example.org')).to.equal('alice@example.org');
    expect(authorJid('bob')).to.equal(null);
    expect(authorJid('room@conference.example.org/nick')).to.equal(null);
  });

  it('lists its fields in the MAM form, none required', () => {
    const form = parseForm(mamQueryForm(searchFormFields(true)).getChild('x', NS.dataForms)!);
    const byVar = new Map(form.fields.map((f) => [f.var, f]));
    expect(byVar.get(FULLTEXT_FIELD)).to.not.equal(undefined);
    expect(byVar.get(SEARCH_FIELD.match)!.type).to.equal('list-single');
    expect(byVar.get(SEARCH_FIELD.match)!.options!.map((o) => o.value)).to.deep.equal(['all', 'any', 'exact']);
    expect(byVar.get(SEARCH_FIELD.caseSensitive)!.type).to.equal('boolean');
    expect(byVar.get(SEARCH_FIELD.rooms)!.type).to.equal('jid-multi');
    expect(form.fields.some((f) => f.required)).to.equal(false);
    expect(searchFormFields(false).map((f) => f.var)).to.not.include(SEARCH_FIELD.category);
  });
});
