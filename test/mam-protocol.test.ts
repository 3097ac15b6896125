import { expect } from 'chai';
import { Element } from '../protocol/xml.js';
import { NS } from '../protocol/namespaces.js';
import { parseForm, formType, formValues } from '../protocol/forms.js';
import { StanzaError } from '../protocol/errors.js';
import { parseRsm, buildRsmResult, RsmError } from '../protocol/rsm.js';
import {
  FULLTEXT_FIELD, MamError, parseMamQuery, mamQueryForm,
  mamResultMessage, mamFin, parseDateTime, formatDateTime,
} from '../protocol/mam.js';
import { xml } from './xml.js';


/** The <query/> of an IQ given as XML. */
function queryOf(iq: string): Element {
  const q = xml(iq).getChild('query', NS.mam);
  if (!q) throw new Error('no MAM query');
  return q;
}

function setOf(iq: string): Element {
  const s = xml(iq).getChild('query')?.getChild('set', NS.rsm);
  if (!s) throw new Error('no RSM set');
  return s;
}

function thrown(fn: () => unknown): StanzaError {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(StanzaError);
    return e as StanzaError;
  }
  throw new Error('expected an error');
}

/** A submitted MAM query with the given fields (FORM_TYPE first). */
function formQuery(fields: string, extra = ''): Element {
  return queryOf(`<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>
    <x xmlns='jabber:x:data' type='submit'>
      <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>
      ${fields}
    </x>${extra}
  </query></iq>`);
}

describe('XEP-0059 result set management', () => {
  it('reads <max/> (Example 1)', () => {
    const set = setOf(`<iq type='set' from='stpeter@jabber.org/roundabout' to='users.jabber.org' id='limit1'>
  <query xmlns='jabber:iq:search'>
    <nick>Pete</nick>
    <set xmlns='http://jabber.org/protocol/rsm'>
      <max>10</max>
    </set>
  </query>
</iq>`);
    expect(parseRsm(set)).to.deep.equal({ max: 10 });
  });

  it('reads <after/> (Example 5)', () => {
    const set = setOf(`<iq type='set' from='stpeter@jabber.org/roundabout' to='users.jabber.org' id='page2'>
  <query xmlns='jabber:iq:search'>
    <nick>Pete</nick>
    <set xmlns='http://jabber.org/protocol/rsm'>
      <max>10</max>
      <after>peterpan@neverland.lit</after>
    </set>
  </query>
</iq>`);
    expect(parseRsm(set)).to.deep.equal({ max: 10, after: 'peterpan@neverland.lit' });
  });

  it('reads <before/> with a UID (Example 8)', () => {
    const set = setOf(`<iq type='set' from='stpeter@jabber.org/roundabout' to='users.jabber.org' id='back1'>
  <query xmlns='jabber:iq:search'>
    <nick>Pete</nick>
    <set xmlns='http://jabber.org/protocol/rsm'>
      <max>10</max>
      <before>peter@pixyland.org</before>
    </set>
  </query>
</iq>`);
    expect(parseRsm(set)).to.deep.equal({ max: 10, before: 'peter@pixyland.org' });
  });

  it('reads an empty <before/> as the last page (Example 11)', () => {
    const set = setOf(`<iq type='set' from='stpeter@jabber.org/roundabout' to='users.jabber.org' id='page1'>
  <query xmlns='jabber:iq:search'>
    <nick>Pete</nick>
    <set xmlns='http://jabber.org/protocol/rsm'>
      <max>10</max>
      <before/>
    </set>
  </query>
</iq>`);
    expect(parseRsm(set)).to.deep.equal({ max: 10, before: true });
  });

  it('reads <index/> (Example 12) and <max>0</max> (Example 15)', () => {
    const byIndex = setOf(`<iq type='set' from='stpeter@jabber.org/roundabout' to='users.jabber.org' id='index10'>
  <query xmlns='jabber:iq:search'>
    <nick>Pete</nick>
    <set xmlns='http://jabber.org/protocol/rsm'>
      <max>10</max>
      <index>371</index>
    </set>
  </query>
</iq>`);
    expect(parseRsm(byIndex)).to.deep.equal({ max: 10, index: 371 });
    const count = new Element('set', { xmlns: NS.rsm });
    count.c('max').t('0');
    expect(parseRsm(count)).to.deep.equal({ max: 0 });
  });

  it('treats an absent set, a set of another namespace and an empty <after/> as no paging', () => {
    expect(parseRsm(undefined)).to.deep.equal({});
    const other = new Element('set', { xmlns: 'urn:example' });
    other.c('max').t('nope');
    expect(parseRsm(other)).to.deep.equal({});
    const emptyAfter = new Element('set', { xmlns: NS.rsm });
    emptyAfter.c('after');
    expect(parseRsm(emptyAfter)).to.deep.equal({});
  });

  it('accepts surrounding whitespace and a plus sign in integers (xs:int)', () => {
    const set = new Element('set', { xmlns: NS.rsm });
    set.c('max').t('\n  +25 ');
    set.c('index').t(' 0');
    expect(parseRsm(set)).to.deep.equal({ max: 25, index: 0 });
  });

  for (const [name, value] of [
    ['max', '-1'], ['max', 'ten'], ['max', '1.5'], ['max', ''], ['max', '1e3'], ['max', '2147483648'],
    ['index', '-3'], ['index', 'x'], ['index', ''], ['index', '0x10'],
  ] as const) {
    it(`rejects <${name}>${value}</${name}> with bad-request`, () => {
      const set = new Element('set', { xmlns: NS.rsm });
      set.c(name).t(value);
      const err = thrown(() => parseRsm(set));
      expect(err).to.be.instanceOf(RsmError);
      expect(err.condition).to.equal('bad-request');
      expect(err.type).to.equal('modify');
    });
  }

  it('builds the result set of a page (Example 4 shape)', () => {
    const set = buildRsmResult({ first: { id: 'stpeter@jabber.org', index: 0 }, last: 'peterpan@neverland.lit', count: 800 });
    expect(set.toString()).to.equal(
      "<set xmlns='http://jabber.org/protocol/rsm'><first index='0'>stpeter@jabber.org</first>" +
      '<last>peterpan@neverland.lit</last><count>800</count></set>');
  });

  it('builds an empty page with only a count (Example 7), and an empty set', () => {
    expect(buildRsmResult({ count: 790 }).toString()).to.equal(
      "<set xmlns='http://jabber.org/protocol/rsm'><count>790</count></set>");
    expect(buildRsmResult({}).toString()).to.equal("<set xmlns='http://jabber.org/protocol/rsm'/>");
    expect(buildRsmResult({ first: { id: 'a' }, last: 'a' }).toString()).to.equal(
      "<set xmlns='http://jabber.org/protocol/rsm'><first>a</first><last>a</last></set>");
  });

  it('round-trips a built set through the parser', () => {
    const built = buildRsmResult({ first: { id: 'x1', index: 10 }, last: 'x9', count: 20 });
    const parsed = xml(built.toString());
    expect(parsed.ns).to.equal(NS.rsm);
    expect(parsed.getChild('first', NS.rsm)?.attrs.index).to.equal('10');
    expect(parsed.getChildText('first', NS.rsm)).to.equal('x1');
    expect(parsed.getChildText('last', NS.rsm)).to.equal('x9');
    expect(parsed.getChildText('count', NS.rsm)).to.equal('20');
  });
});

describe('XEP-0082 date-times', () => {
  it('parses the profile with Z, offsets and fractions', () => {
    expect(parseDateTime('2010-06-07T00:00:00Z')?.toISOString()).to.equal('2010-06-07T00:00:00.000Z');
    expect(parseDateTime('1969-07-21T02:56:15.123Z')?.toISOString()).to.equal('1969-07-21T02:56:15.123Z');
    expect(parseDateTime('1969-07-20T21:56:15-05:00')?.toISOString()).to.equal('1969-07-21T02:56:15.000Z');
    expect(parseDateTime('2010-07-10T23:08:25+02:30')?.toISOString()).to.equal('2010-07-10T20:38:25.000Z');
    expect(parseDateTime('2000-02-29T12:00:00.5Z')?.toISOString()).to.equal('2000-02-29T12:00:00.500Z');
    expect(parseDateTime('0050-01-01T00:00:00Z')?.getUTCFullYear()).to.equal(50);
  });

  for (const bad of [
    '', '2010-06-07', '2010-06-07T00:00Z', '2010-06-07T00:00:00', '2010-06-07 00:00:00Z',
    '2010-13-01T00:00:00Z', '2010-00-01T00:00:00Z', '2010-04-31T00:00:00Z', '2011-02-29T00:00:00Z',
    '1900-02-29T00:00:00Z', '2010-06-07T24:00:00Z', '2010-06-07T00:60:00Z', '2010-06-07T00:00:60Z',
    '2010-06-07T00:00:00+0100', '2010-06-07T00:00:00+24:00', '2010-06-07T00:00:00.Z',
    '2010-06-07T00:00:00z', ' 2010-06-07T00:00:00Z', '10-06-07T00:00:00Z', 'yesterday',
    // In UTC outside years 0000-9999, so not writable as XEP-0082 (found by fuzzing).
    '0000-01-01T00:00:00+01:00', '9999-12-31T23:59:59-01:00',
  ]) {
    it(`rejects ${JSON.stringify(bad)}`, () => {
      expect(parseDateTime(bad)).to.equal(null);
    });
  }

  it('formats in UTC with Z, keeping milliseconds only when present', () => {
    expect(formatDateTime(new Date(Date.UTC(2010, 6, 10, 23, 8, 25)))).to.equal('2010-07-10T23:08:25Z');
    expect(formatDateTime(new Date(Date.UTC(2010, 6, 10, 23, 8, 25, 42)))).to.equal('2010-07-10T23:08:25.042Z');
    const d = new Date(Date.UTC(2002, 9, 13, 23, 58, 37, 7));
    expect(parseDateTime(formatDateTime(d))?.getTime()).to.equal(d.getTime());
  });
});

describe('XEP-0313 queries', () => {
  it('exports the namespaces', () => {
    expect(NS.mam).to.equal('urn:xmpp:mam:2');
    expect(NS.mamExtended).to.equal('urn:xmpp:mam:2#extended');
    expect(NS.fulltext).to.equal('urn:xmpp:fulltext:0');
    expect(FULLTEXT_FIELD).to.equal('{urn:xmpp:fulltext:0}fulltext');
  });

  it('reads a bare query with a queryid (Example 2)', () => {
    const q = parseMamQuery(queryOf(`<iq type='set' id='juliet1'>
  <query xmlns='urn:xmpp:mam:2' queryid='f27' />
</iq>`));
    expect(q).to.deep.equal({ queryid: 'f27', rsm: {}, flipPage: false });
  });

  it('reads the node attribute', () => {
    const q = parseMamQuery(queryOf(`<iq to='pubsub.shakespeare.lit' type='set' id='juliet1'>
  <query xmlns='urn:xmpp:mam:2' queryid='f28' node='fdp/submitted/capulet.lit/sonnets'/>
</iq>`));
    expect(q.queryid).to.equal('f28');
    expect(q.node).to.equal('fdp/submitted/capulet.lit/sonnets');
  });

  it('reads a with filter (Example 6)', () => {
    const q = parseMamQuery(queryOf(`<iq type='set' id='juliet1'>
  <query xmlns='urn:xmpp:mam:2'>
    <x xmlns='jabber:x:data' type='submit'>
      <field var='FORM_TYPE' type='hidden'>
        <value>urn:xmpp:mam:2</value>
      </field>
      <field var='with'>
        <value>juliet@capulet.lit</value>
      </field>
    </x>
  </query>
</iq>`));
    expect(q).to.deep.equal({ with: 'juliet@capulet.lit', rsm: {}, flipPage: false });
  });

  it('normalizes the with JID and keeps a resource', () => {
    const q = parseMamQuery(formQuery(`<field var='with'><value>Juliet@Capulet.LIT/balcony</value></field>`));
    expect(q.with).to.equal('juliet@capulet.lit/balcony');
  });

  it('reads a timespan (Example 7) and a start alone (Example 8)', () => {
    const span = parseMamQuery(queryOf(`<iq type='set' id='juliet1'>
  <query xmlns='urn:xmpp:mam:2'>
    <x xmlns='jabber:x:data' type='submit'>
      <field var='FORM_TYPE' type='hidden'>
        <value>urn:xmpp:mam:2</value>
      </field>
      <field var='start'>
        <value>2010-06-07T00:00:00Z</value>
      </field>
      <field var='end'>
        <value>2010-07-07T13:23:54Z</value>
      </field>
    </x>
  </query>
</iq>`));
    expect(span.start?.toISOString()).to.equal('2010-06-07T00:00:00.000Z');
    expect(span.end?.toISOString()).to.equal('2010-07-07T13:23:54.000Z');
    const after = parseMamQuery(queryOf(`<iq type='set' id='juliet1'>
  <query xmlns='urn:xmpp:mam:2'>
    <x xmlns='jabber:x:data' type='submit'>
      <field var='FORM_TYPE' type='hidden'>
        <value>urn:xmpp:mam:2</value>
      </field>
      <field var='start'>
        <value>2010-08-07T00:00:00Z</value>
      </field>
    </x>
  </query>
</iq>`));
    expect(after.start?.toISOString()).to.equal('2010-08-07T00:00:00.000Z');
    expect(after.end).to.equal(undefined);
  });

  it('reads after-id (Example 9), after-id with before-id (Example 10) and ids (Example 11)', () => {
    const afterOnly = parseMamQuery(queryOf(`<iq type='set' id='juliet1'>
  <query xmlns='urn:xmpp:mam:2'>
    <x xmlns='jabber:x:data' type='submit'>
      <field var='FORM_TYPE' type='hidden'>
        <value>urn:xmpp:mam:2</value>
      </field>
      <field var='after-id'>
        <value>09af3-cc343-b409f</value>
      </field>
    </x>
  </query>
</iq>`));
    expect(afterOnly.afterId).to.equal('09af3-cc343-b409f');
    const between = parseMamQuery(queryOf(`<iq type='set' id='juliet1'>
  <query xmlns='urn:xmpp:mam:2'>
    <x xmlns='jabber:x:data' type='submit'>
      <field var='FORM_TYPE' type='hidden'>
        <value>urn:xmpp:mam:2</value>
      </field>
      <field var='after-id'>
        <value>28482-98726-73623</value>
      </field>
      <field var='before-id'>
        <value>09af3-cc343-b409f</value>
      </field>
    </x>
  </query>
</iq>`));
    expect(between.afterId).to.equal('28482-98726-73623');
    expect(between.beforeId).to.equal('09af3-cc343-b409f');
    const single = parseMamQuery(queryOf(`<iq type='set' id='juliet1'>
  <query xmlns='urn:xmpp:mam:2'>
    <x xmlns='jabber:x:data' type='submit'>
      <field var='FORM_TYPE' type='hidden'>
        <value>urn:xmpp:mam:2</value>
      </field>
      <field var='ids'>
        <value>28482-98726-73623</value>
      </field>
    </x>
  </query>
</iq>`));
    expect(single.ids).to.deep.equal(['28482-98726-73623']);
  });

  it('reads several ids', () => {
    const q = parseMamQuery(formQuery(`<field var='ids' type='list-multi'><value>a</value><value>b</value><value>c</value></field>`));
    expect(q.ids).to.deep.equal(['a', 'b', 'c']);
  });

  it('reads RSM with a form (Example 18, Example 20) and the last page (Example 23)', () => {
    const limited = parseMamQuery(queryOf(`<iq type='set' id='q29302'>
  <query xmlns='urn:xmpp:mam:2'>
    <x xmlns='jabber:x:data' type='submit'>
      <field var='FORM_TYPE' type='hidden'>
        <value>urn:xmpp:mam:2</value>
      </field>
      <field var='start'>
        <value>2010-08-07T00:00:00Z</value>
      </field>
    </x>
    <set xmlns='http://jabber.org/protocol/rsm'>
      <max>10</max>
    </set>
  </query>
</iq>`));
    expect(limited.rsm).to.deep.equal({ max: 10 });
    const next = parseMamQuery(queryOf(`<iq type='set' id='q29303'>
  <query xmlns='urn:xmpp:mam:2'>
      <x xmlns='jabber:x:data' type='submit'>
        <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>
        <field var='start'><value>2010-08-07T00:00:00Z</value></field>
      </x>
      <set xmlns='http://jabber.org/protocol/rsm'>
         <max>10</max>
         <after>09af3-cc343-b409f</after>
      </set>
  </query>
</iq>`));
    expect(next.rsm).to.deep.equal({ max: 10, after: '09af3-cc343-b409f' });
    expect(next.flipPage).to.equal(false);
    const last = parseMamQuery(queryOf(`<iq type='set' id='q29303'>
  <query xmlns='urn:xmpp:mam:2'>
      <x xmlns='jabber:x:data' type='submit'>
        <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>
        <field var='start'><value>2010-08-07T00:00:00Z</value></field>
      </x>
      <set xmlns='http://jabber.org/protocol/rsm'>
         <max>10</max>
         <before/>
      </set>
  </query>
</iq>`));
    expect(last.rsm).to.deep.equal({ max: 10, before: true });
  });

  it('reads a flipped page (Example 24)', () => {
    const q = parseMamQuery(queryOf(`<iq type='set' id='q29309'>
  <query xmlns='urn:xmpp:mam:2'>
      <x xmlns='jabber:x:data' type='submit'>
        <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>
        <field var='start'><value>2010-08-07T00:00:00Z</value></field>
      </x>
      <set xmlns='http://jabber.org/protocol/rsm'>
         <max>10</max>
         <after>09af3-cc343-b409f</after>
      </set>
      <flip-page/>
  </query>
</iq>`));
    expect(q.flipPage).to.equal(true);
    expect(q.rsm).to.deep.equal({ max: 10, after: '09af3-cc343-b409f' });
    expect(q.start?.toISOString()).to.equal('2010-08-07T00:00:00.000Z');
  });

  it('ignores a flip-page of another namespace', () => {
    const q = parseMamQuery(queryOf(`<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'><flip-page xmlns='urn:example'/></query></iq>`));
    expect(q.flipPage).to.equal(false);
  });

  it('reads the XEP-0431 fulltext field', () => {
    const q = parseMamQuery(formQuery(`<field var='{urn:xmpp:fulltext:0}fulltext' type='text-single'><value>Where art thou</value></field>`));
    expect(q.fulltext).to.equal('Where art thou');
  });

  it('treats empty values as no filter', () => {
    const q = parseMamQuery(formQuery(`<field var='with'/><field var='start'><value></value></field>
      <field var='{urn:xmpp:fulltext:0}fulltext'><value/></field><field var='ids'/><field var='after-id'/>`));
    expect(q).to.deep.equal({ rsm: {}, flipPage: false });
  });

  it('accepts a form without FORM_TYPE', () => {
    const q = parseMamQuery(queryOf(`<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>
      <x xmlns='jabber:x:data' type='submit'><field var='with'><value>romeo@montague.lit</value></field></x>
    </query></iq>`));
    expect(q.with).to.equal('romeo@montague.lit');
  });

  it('accepts the additional fields the caller names, and only those', () => {
    const query = formQuery(`<field var='include-groupchat' type='boolean'><value>true</value></field>`);
    const q = parseMamQuery(query, ['include-groupchat']);
    expect(q.extra).to.deep.equal({ 'include-groupchat': ['true'] });
    const err = thrown(() => parseMamQuery(query));
    expect(err.condition).to.equal('feature-not-implemented');
  });

  describe('errors', () => {
    function expectError(query: Element, condition: string): void {
      const err = thrown(() => parseMamQuery(query));
      expect(err.condition).to.equal(condition);
    }

    it('rejects an unknown field with feature-not-implemented (§4.1.5), e.g. those of Example 16', () => {
      const query = queryOf(`<iq type='set' id='query4'>
  <query xmlns='urn:xmpp:mam:2'>
    <x xmlns='jabber:x:data' type='submit'>
      <field type='hidden' var='FORM_TYPE'>
        <value>urn:xmpp:mam:2</value>
      </field>
      <field type='text-single' var='urn:example:xmpp:free-text-search'>
        <value>Where arth thou, my Juliet?</value>
      </field>
      <field type='text-single' var='urn:example:xmpp:stanza-content'>
        <value>{http://jabber.org/protocol/mood}mood/lonely</value>
      </field>
    </x>
  </query>
</iq>`);
      const err = thrown(() => parseMamQuery(query));
      expect(err).to.be.instanceOf(MamError);
      expect(err.condition).to.equal('feature-not-implemented');
      expect(err.type).to.equal('cancel');
    });

    it('rejects include-groupchat, which is not advertised (§4.1.4)', () => {
      expectError(formQuery(`<field var='include-groupchat'><value>true</value></field>`), 'feature-not-implemented');
    });

    it('rejects another FORM_TYPE', () => {
      expectError(queryOf(`<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>
        <x xmlns='jabber:x:data' type='submit'>
          <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:1</value></field>
        </x></query></iq>`), 'bad-request');
      expectError(queryOf(`<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>
        <x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'/></x></query></iq>`), 'bad-request');
    });

    it('rejects a form that is not of type submit', () => {
      expectError(queryOf(`<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>
        <x xmlns='jabber:x:data' type='form'>
          <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>
        </x></query></iq>`), 'bad-request');
    });

    it('rejects a malformed form', () => {
      expectError(queryOf(`<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>
        <x xmlns='jabber:x:data' type='submit'>
          <field var='start'><value>2010-08-07T00:00:00Z</value></field>
          <field var='start'><value>2010-08-08T00:00:00Z</value></field>
        </x></query></iq>`), 'bad-request');
      expectError(queryOf(`<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>
        <x xmlns='jabber:x:data'/></query></iq>`), 'bad-request');
    });

    for (const field of ['start', 'end']) {
      for (const value of ['2010-08-07', '2010-08-07T00:00:00', 'tomorrow', '2010-02-30T00:00:00Z']) {
        it(`rejects ${field} = ${value} with bad-request`, () => {
          const err = thrown(() => parseMamQuery(formQuery(`<field var='${field}'><value>${value}</value></field>`)));
          expect(err).to.be.instanceOf(MamError);
          expect(err.condition).to.equal('bad-request');
          expect(err.type).to.equal('modify');
        });
      }
    }

    for (const value of ['@capulet.lit', 'juliet@', 'juliet@capulet.lit/', 'a b@capulet.lit']) {
      it(`rejects with = ${JSON.stringify(value)} with bad-request`, () => {
        expectError(formQuery(`<field var='with'><value>${value}</value></field>`), 'bad-request');
      });
    }

    for (const field of ['start', 'with', 'before-id', 'after-id', FULLTEXT_FIELD]) {
      it(`rejects several values for ${field}`, () => {
        expectError(formQuery(`<field var='${field}'><value>2010-08-07T00:00:00Z</value><value>2010-08-07T00:00:00Z</value></field>`), 'bad-request');
      });
    }

    it('passes RSM errors on as bad-request', () => {
      const err = thrown(() => parseMamQuery(queryOf(`<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>
        <set xmlns='http://jabber.org/protocol/rsm'><max>-5</max></set></query></iq>`)));
      expect(err).to.be.instanceOf(RsmError);
      expect(err.condition).to.equal('bad-request');
    });

    it('rejects an element that is not a MAM query', () => {
      expectError(new Element('query', { xmlns: 'urn:xmpp:mam:1' }), 'bad-request');
      expectError(new Element('prefs', { xmlns: NS.mam }), 'bad-request');
    });
  });
});

describe('XEP-0313 query form', () => {
  it('lists the supported fields like Example 15, none required', () => {
    const query = mamQueryForm();
    expect(query.name).to.equal('query');
    expect(query.ns).to.equal(NS.mam);
    const x = query.getChild('x', NS.dataForms)!;
    const form = parseForm(x);
    expect(form.type).to.equal('form');
    expect(formType(form)).to.equal(NS.mam);
    const types = Object.fromEntries(form.fields.map((f) => [f.var, f.type]));
    expect(types).to.deep.equal({
      FORM_TYPE: 'hidden', with: 'jid-single', start: 'text-single', end: 'text-single',
      'before-id': 'text-single', 'after-id': 'text-single', ids: 'list-multi', [FULLTEXT_FIELD]: 'text-single',
    });
    expect(form.fields.some((f) => f.required)).to.equal(false);
    expect(formValues(form, 'ids')).to.deep.equal([]);
    const ids = x.getChildren('field').find((f) => f.attrs.var === 'ids')!;
    expect(ids.getChildren('option')).to.have.length(0);
    const validate = ids.getChild('validate', 'http://jabber.org/protocol/xdata-validate')!;
    expect(validate.attrs.datatype).to.equal('xs:string');
    expect(validate.getChild('open')).to.not.equal(undefined);
  });

  it('serializes with the namespaces written out and parses back', () => {
    const text = mamQueryForm().toString();
    expect(text).to.contain("<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='form'>");
    expect(text).to.contain("<validate xmlns='http://jabber.org/protocol/xdata-validate' datatype='xs:string'><open/></validate>");
    const reparsed = xml(`<iq type='result' id='form1'>${text}</iq>`).getChild('query', NS.mam)!;
    const form = parseForm(reparsed.getChild('x', NS.dataForms)!);
    expect(form.fields.map((f) => f.var)).to.deep.equal([
      'FORM_TYPE', 'with', 'start', 'end', 'before-id', 'after-id', 'ids', FULLTEXT_FIELD,
    ]);
  });

  it('appends extra fields, never marked required', () => {
    const query = mamQueryForm([{ var: 'include-groupchat', type: 'boolean', required: true, values: [] }]);
    const form = parseForm(query.getChild('x', NS.dataForms)!);
    const extra = form.fields.at(-1)!;
    expect(extra.var).to.equal('include-groupchat');
    expect(extra.type).to.equal('boolean');
    expect(extra.required).to.not.equal(true);
  });

  it('accepts a submission of every field it advertises', () => {
    const q = parseMamQuery(formQuery(`
      <field var='with' type='jid-single'><value>romeo@montague.lit</value></field>
      <field var='start' type='text-single'><value>2010-06-07T00:00:00Z</value></field>
      <field var='end' type='text-single'><value>2010-07-07T13:23:54Z</value></field>
      <field var='before-id' type='text-single'><value>b</value></field>
      <field var='after-id' type='text-single'><value>a</value></field>
      <field var='ids' type='list-multi'><value>i1</value><value>i2</value></field>
      <field var='{urn:xmpp:fulltext:0}fulltext' type='text-single'><value>love</value></field>`));
    expect(q.with).to.equal('romeo@montague.lit');
    expect(q.start?.toISOString()).to.equal('2010-06-07T00:00:00.000Z');
    expect(q.end?.toISOString()).to.equal('2010-07-07T13:23:54.000Z');
    expect(q.beforeId).to.equal('b');
    expect(q.afterId).to.equal('a');
    expect(q.ids).to.deep.equal(['i1', 'i2']);
    expect(q.fulltext).to.equal('love');
  });
});

describe('XEP-0313 results', () => {
  const archived = `<message xmlns='jabber:client' from="witch@shakespeare.lit" to="macbeth@shakespeare.lit">
        <body>Hail to thee</body>
      </message>`;

  it('builds the result message of Example 3', () => {
    const stored = xml(archived);
    const msg = mamResultMessage({
      to: 'juliet@capulet.lit/chamber', queryid: 'f27', id: '28482-98726-73623',
      stamp: new Date(Date.UTC(2010, 6, 10, 23, 8, 25)), forwarded: stored,
    });
    const expected = xml(`<message to='juliet@capulet.lit/chamber'>
  <result xmlns='urn:xmpp:mam:2' queryid='f27' id='28482-98726-73623'>
    <forwarded xmlns='urn:xmpp:forward:0'>
      <delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/>
      ${archived}
    </forwarded>
  </result>
</message>`);
    const reparsed = xml(msg.toString());
    expect(reparsed.attrs).to.deep.equal({ to: 'juliet@capulet.lit/chamber' });
    const result = reparsed.getChild('result', NS.mam)!;
    expect(result.attrs).to.deep.equal(expected.getChild('result', NS.mam)!.attrs);
    const fwd = result.getChild('forwarded', NS.forward)!;
    expect(fwd.getChild('delay', NS.delay)?.attrs.stamp).to.equal('2010-07-10T23:08:25Z');
    const inner = fwd.getChild('message', NS.client)!;
    expect(inner.attrs.from).to.equal('witch@shakespeare.lit');
    expect(inner.attrs.to).to.equal('macbeth@shakespeare.lit');
    expect(inner.getChildText('body', NS.client)).to.equal('Hail to thee');
  });

  it('serializes exactly, with the forwarded message in jabber:client', () => {
    const stored = new Element('message', { from: 'romeo@montague.lit/orchard', type: 'chat', id: '8a54s' }, [], NS.client);
    stored.c('body').t("Call me but love, & I'll be new baptized");
    const msg = mamResultMessage({
      to: 'juliet@capulet.lit/chamber', from: 'coven@chat.shakespeare.lit', id: 'u1',
      stamp: new Date(Date.UTC(2002, 9, 13, 23, 58, 37)), forwarded: stored,
    });
    expect(msg.toString()).to.equal(
      "<message to='juliet@capulet.lit/chamber' from='coven@chat.shakespeare.lit'>" +
      "<result xmlns='urn:xmpp:mam:2' id='u1'><forwarded xmlns='urn:xmpp:forward:0'>" +
      "<delay xmlns='urn:xmpp:delay' stamp='2002-10-13T23:58:37Z'/>" +
      "<message xmlns='jabber:client' from='romeo@montague.lit/orchard' type='chat' id='8a54s'>" +
      "<body>Call me but love, &amp; I'll be new baptized</body></message></forwarded></result></message>");
    // The stored element is left as it was.
    expect(stored.attrs.xmlns).to.equal(undefined);
  });

  it('omits queryid when the query had none and keeps the MUC payload (MUC archive example)', () => {
    const stored = xml(`<message xmlns="jabber:client"
        from='coven@chat.shakespeare.lit/firstwitch'
        id='162BEBB1-F6DB-4D9A-9BD8-CFDCC801A0B2'
        type='groupchat'>
        <body>Thrice the brinded cat hath mew'd.</body>
        <x xmlns='http://jabber.org/protocol/muc#user'>
          <item affiliation='none'
                jid='witch1@shakespeare.lit'
                role='participant' />
        </x>
      </message>`);
    const msg = xml(mamResultMessage({
      to: 'hag66@shakespeare.lit/pda', from: 'coven@chat.shakespeare.lit', id: '34482-21985-73620',
      stamp: new Date(Date.UTC(2002, 9, 13, 23, 58, 37)), forwarded: stored,
    }).toString());
    const result = msg.getChild('result', NS.mam)!;
    expect(result.attrs.queryid).to.equal(undefined);
    const inner = result.getChild('forwarded', NS.forward)!.getChild('message', NS.client)!;
    expect(inner.attrs.type).to.equal('groupchat');
    const item = inner.getChild('x', 'http://jabber.org/protocol/muc#user')!.getChild('item')!;
    expect(item.attrs.jid).to.equal('witch1@shakespeare.lit');
  });

  it('builds the fin of Example 4 (incomplete) and Example 22 (complete)', () => {
    const partial = mamFin({ complete: false, rsm: { first: { id: '28482-98726-73623', index: 0 }, last: '09af3-cc343-b409f' } });
    expect(partial.toString()).to.equal(
      "<fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>" +
      "<first index='0'>28482-98726-73623</first><last>09af3-cc343-b409f</last></set></fin>");
    const done = mamFin({ complete: true, rsm: { first: { id: '23452-4534-1', index: 0 }, last: '390-2342-22', count: 16 } });
    const expected = xml(`<iq type='result' id='u29303'>
  <fin xmlns='urn:xmpp:mam:2' complete='true'>
    <set xmlns='http://jabber.org/protocol/rsm'>
      <first index='0'>23452-4534-1</first>
      <last>390-2342-22</last>
      <count>16</count>
    </set>
  </fin>
</iq>`).getChild('fin', NS.mam)!;
    const reparsed = xml(done.toString());
    expect(reparsed.attrs).to.deep.equal(expected.attrs);
    const set = reparsed.getChild('set', NS.rsm)!;
    const expectedSet = expected.getChild('set', NS.rsm)!;
    for (const name of ['first', 'last', 'count']) {
      expect(set.getChildText(name, NS.rsm)).to.equal(expectedSet.getChildText(name, NS.rsm)!.trim());
    }
    expect(set.getChild('first', NS.rsm)?.attrs.index).to.equal('0');
  });

  it('marks unstable results and writes nothing for stable ones', () => {
    expect(mamFin({ complete: true, stable: false, rsm: {} }).toString()).to.equal(
      "<fin xmlns='urn:xmpp:mam:2' complete='true' stable='false'><set xmlns='http://jabber.org/protocol/rsm'/></fin>");
    expect(mamFin({ complete: false, stable: true, rsm: { count: 0 } }).toString()).to.equal(
      "<fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><count>0</count></set></fin>");
  });
});
