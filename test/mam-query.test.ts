// The shared XEP-0313 query executor against a real server core and its PGlite store, and the
// account archive's building blocks (what is archived, preferences, ids, group commit).
import { expect } from 'chai';
import { Element } from '../protocol/xml.js';
import { NS } from '../protocol/namespaces.js';
import { parseJid } from '../protocol/jid.js';
import { StanzaError } from '../protocol/errors.js';
import { FULLTEXT_FIELD } from '../protocol/mam.js';
import { ServerCore } from '../src/server.js';
import type { IqRequest } from '../src/context.js';
import { answerMamQuery, mamFormQuery, mamMetadata, type MamQueryOptions } from '../src/mam-query.js';
import {
  archivable, parsePrefs, prefsElement, prefsDecision, StanzaIds, DEFAULT_PREFS,
} from '../src/modules/mam.js';
import { ArchiveWriter } from '../src/archive-writer.js';
import type { ArchiveEntry, ArchiveStore } from '../storage/types.js';
import { xml } from './xml.js';
import { startUnitServer, stanzaErrorOf } from './unit-server.js';

const ROOM = 'room@conference.localhost';
const READER = 'reader@reader.test/phone';
const T0 = Date.parse('2026-03-01T10:00:00.000Z');

const entry = (n: number, extra: Partial<ArchiveEntry> = {}): ArchiveEntry => ({
  archive: ROOM,
  stanzaId: `sid-${String(n).padStart(3, '0')}`,
  stamp: new Date(T0 + n * 1000),
  fromJid: `${ROOM}/nick${n % 3}`,
  realJid: `user${n % 3}@example.com`,
  body: `message ${n}${n % 4 === 0 ? ' ripe mango' : ''}`,
  stanza: `<message type='groupchat' id='m${n}' from='${ROOM}/nick${n % 3}'><body>message ${n}${n % 4 === 0 ? ' ripe mango' : ''}</body></message>`,
  ...extra,
});


describe('MAM query executor (answerMamQuery)', function () {
  this.timeout(30000);
  let server: ServerCore;
  let stopServer: () => Promise<void>;
  /** Stanzas routed to the requester's domain, in order. */
  let delivered: Element[] = [];

  before(async function () {
    ({ server, stop: stopServer } = await startUnitServer('perch-mamq-'));
    server.router.addDomain('reader.test', (st) => delivered.push(st));
    await server.stores.archive.append(Array.from({ length: 30 }, (_, n) => entry(n)));
  });
  after(async function () {
    await stopServer?.();
  });
  beforeEach(() => {
    delivered = [];
  });

  function request(query: string, archive = ROOM): IqRequest {
    const stanza = xml(`<iq type='set' id='q1' from='${READER}' to='${archive}'>${query}</iq>`);
    return { stanza, payload: stanza.elements()[0]!, from: parseJid(READER), to: parseJid(archive), session: null };
  }
  const form = (fields: Record<string, string | string[]>) =>
    `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>${NS.mam}</value></field>${Object.entries(fields)
      .map(([k, v]) => `<field var='${k}'>${(Array.isArray(v) ? v : [v]).map((x) => `<value>${x}</value>`).join('')}</field>`)
      .join('')}</x>`;
  const query = (inner = '', attrs = '') => `<query xmlns='${NS.mam}'${attrs}>${inner}</query>`;
  const rsm = (inner: string) => `<set xmlns='${NS.rsm}'>${inner}</set>`;
  const run = (q: string, opts: Partial<MamQueryOptions> = {}, archive = ROOM) =>
    answerMamQuery(server, request(q, archive), { archive, realJids: false, ...opts });
  const resultIds = () => delivered.map((m) => m.getChild('result', NS.mam)!.attrs.id);
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => entry(from + i).stanzaId);
  const finSet = (fin: Element) => {
    const set = fin.getChild('set', NS.rsm)!;
    return {
      complete: fin.attrs.complete === 'true',
      first: set.getChildText('first', NS.rsm),
      index: set.getChild('first', NS.rsm)?.attrs.index,
      last: set.getChildText('last', NS.rsm),
      count: set.getChildText('count', NS.rsm),
    };
  };

  it('sends each entry from the archive to the requester and returns the fin (§4.2, §4.3)', async () => {
    const fin = await run(query(rsm('<max>3</max>'), " queryid='f27'"));
    expect(delivered).to.have.length(3);
    const m = delivered[0]!;
    expect(m.attrs).to.include({ from: ROOM, to: READER });
    const result = m.getChild('result', NS.mam)!;
    expect(result.attrs).to.deep.equal({ xmlns: NS.mam, queryid: 'f27', id: 'sid-000' });
    const fwd = result.getChild('forwarded', NS.forward)!;
    expect(fwd.getChild('delay', NS.delay)!.attrs.stamp).to.equal('2026-03-01T10:00:00Z');
    const inner = fwd.getChild('message', NS.client)!;
    expect(inner.attrs).to.include({ id: 'm0', type: 'groupchat', from: `${ROOM}/nick0` });
    expect(inner.getChildText('body', NS.client)).to.equal('message 0 ripe mango');
    expect(fin.name).to.equal('fin');
    expect(fin.ns).to.equal(NS.mam);
    expect(finSet(fin)).to.deep.equal({ complete: false, first: 'sid-000', index: '0', last: 'sid-002', count: '30' });
  });

  it('limits pages: the client max up to maxPage, 50 (or maxPage) without one', async () => {
    await run(query());
    expect(delivered).to.have.length(30);
    delivered = [];
    expect(finSet(await run(query(), { maxPage: 10 })).complete).to.equal(false);
    expect(delivered).to.have.length(10);
    delivered = [];
    await run(query(rsm('<max>25</max>')), { maxPage: 20 });
    expect(delivered).to.have.length(20);
    delivered = [];
    const countOnly = finSet(await run(query(rsm('<max>0</max>'))));
    expect(delivered).to.have.length(0);
    expect(countOnly).to.deep.equal({ complete: false, first: undefined, index: undefined, last: undefined, count: '30' });
  });

  it('matches a bare with against real JIDs only when allowed, a full one against the occupant', async () => {
    await run(query(form({ with: 'user1@example.com' })));
    expect(resultIds()).to.deep.equal([]);
    delivered = [];
    await run(query(form({ with: 'USER1@example.com' })), { realJids: true });
    expect(resultIds()).to.deep.equal(Array.from({ length: 10 }, (_, i) => entry(3 * i + 1).stanzaId));
    delivered = [];
    await run(query(form({ with: `${ROOM}/nick2` }) + rsm('<max>2</max><before/>')));
    expect(resultIds()).to.deep.equal([entry(26).stanzaId, entry(29).stanzaId]);
    // The unknown-id check still applies to a filter that can match nothing.
    expect((await stanzaErrorOf(run(query(form({ with: 'user1@example.com' }) + rsm('<after>nope</after>'))))).condition).to.equal('item-not-found');
  });

  it('flips the sending order only', async () => {
    const fin = finSet(await run(query(rsm('<max>4</max><before/>') + '<flip-page/>')));
    expect(resultIds()).to.deep.equal(range(26, 30).reverse());
    expect(fin).to.deep.equal({ complete: false, first: 'sid-026', index: '26', last: 'sid-029', count: '30' });
  });

  it('searches full text newest first', async () => {
    await run(query(form({ [FULLTEXT_FIELD]: 'MANGO' }) + rsm('<max>3</max>')));
    expect(resultIds()).to.deep.equal(['sid-028', 'sid-024', 'sid-020']);
  });

  it('item-not-found for unknown ids in ids, also next to other filters; found ones that are filtered out are fine', async () => {
    await run(query(form({ ids: ['sid-001', 'sid-002'], with: `${ROOM}/nick1` })));
    expect(resultIds()).to.deep.equal(['sid-001']);
    expect((await stanzaErrorOf(run(query(form({ ids: ['sid-001', 'missing'], with: `${ROOM}/nick1` }))))).condition).to.equal('item-not-found');
    expect((await stanzaErrorOf(run(query(form({ ids: ['missing'] }))))).condition).to.equal('item-not-found');
    expect((await stanzaErrorOf(run(query(form({ 'before-id': 'missing' }))))).condition).to.equal('item-not-found');
    // Duplicates name one message.
    delivered = [];
    await run(query(form({ ids: ['sid-004', 'sid-004'] })));
    expect(resultIds()).to.deep.equal(['sid-004']);
  });

  it('refuses bad queries with the XEP-0313 conditions', async () => {
    expect((await stanzaErrorOf(run(query(form({ start: '2026-02-30T00:00:00Z' }))))).condition).to.equal('bad-request');
    expect((await stanzaErrorOf(run(query(form({ '{urn:example}mood': 'x' }))))).condition).to.equal('feature-not-implemented');
    expect((await stanzaErrorOf(run(query('', " node='princely_musings'")))).condition).to.equal('item-not-found');
    expect((await stanzaErrorOf(run(query(rsm('<max>many</max>'))))).condition).to.equal('bad-request');
  });

  it('sends a retracted entry as its tombstone, and skips an unreadable one', async () => {
    const archive = 'tombs@conference.localhost';
    await server.stores.archive.append([
      entry(1, { archive }), entry(2, { archive, stanza: '<message><body>broken' }), entry(3, { archive }),
    ]);
    await server.stores.archive.retract(archive, entry(1).stanzaId, "<message type='groupchat'><retracted xmlns='urn:xmpp:message-retract:1'/></message>");
    const fin = finSet(await run(query(), {}, archive));
    expect(resultIds()).to.deep.equal([entry(1).stanzaId, entry(3).stanzaId]);
    const first = delivered[0]!.getChild('result', NS.mam)!.getChild('forwarded', NS.forward)!.getChild('message', NS.client)!;
    expect(first.getChild('retracted', 'urn:xmpp:message-retract:1')).to.not.equal(undefined);
    expect(first.getChild('body', NS.client)).to.equal(undefined);
    expect([fin.count, fin.last]).to.deep.equal(['3', entry(3).stanzaId]);
  });

  it('describes the query form and the archive metadata', async () => {
    const q = mamFormQuery();
    const x = q.getChild('x', NS.dataForms)!;
    expect(x.attrs.type).to.equal('form');
    expect(x.getChildren('field').map((f) => f.attrs.var)).to.include.members(['with', 'start', 'end', 'before-id', 'after-id', 'ids', FULLTEXT_FIELD]);
    const md = await mamMetadata(server, ROOM);
    expect(md.getChild('start')!.attrs).to.deep.equal({ id: 'sid-000', timestamp: '2026-03-01T10:00:00Z' });
    expect(md.getChild('end')!.attrs).to.deep.equal({ id: 'sid-029', timestamp: '2026-03-01T10:00:29Z' });
    expect((await mamMetadata(server, 'empty@conference.localhost')).children).to.deep.equal([]);
  });
});

describe('account archive: what is archived (XEP-0313 §6.1.1, XEP-0334)', () => {
  it('takes chat and normal messages with a body or a store hint', () => {
    expect(archivable(xml("<message type='chat'><body>hi</body></message>"))).to.equal(true);
    expect(archivable(xml('<message><body>hi</body></message>'))).to.equal(true);
    expect(archivable(xml("<message type='normal'><store xmlns='urn:xmpp:hints'/></message>"))).to.equal(true);
  });
  it('leaves out state-only messages, other types, storage refusals and room private messages', () => {
    expect(archivable(xml("<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>"))).to.equal(false);
    for (const type of ['groupchat', 'headline', 'error']) {
      expect(archivable(xml(`<message type='${type}'><body>x</body></message>`)), type).to.equal(false);
    }
    expect(archivable(xml("<message type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>"))).to.equal(false);
    expect(archivable(xml("<message type='chat'><body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>"))).to.equal(false);
    expect(archivable(xml("<message type='chat'><body>x</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>"))).to.equal(false);
    expect(archivable(xml("<presence><body>x</body></presence>"))).to.equal(false);
  });
});

describe('account archive: preferences (XEP-0441)', () => {
  const prefs = (s: string) => parsePrefs(xml(s));
  it('normalises JIDs, drops duplicates and lets never win', () => {
    const p = prefs(`<prefs xmlns='${NS.mam}' default='roster'><always><jid>JULIET@Capulet.LIT</jid><jid>juliet@capulet.lit</jid><jid>nurse@capulet.lit</jid></always><never><jid>Nurse@capulet.lit</jid><jid>romeo@montague.lit/Orchard</jid></never></prefs>`);
    expect(p).to.deep.equal({ default: 'roster', always: ['juliet@capulet.lit'], never: ['nurse@capulet.lit', 'romeo@montague.lit/Orchard'] });
    expect(prefsElement(p).toString()).to.equal(
      `<prefs xmlns='${NS.mam}' default='roster'><always><jid>juliet@capulet.lit</jid></always><never><jid>nurse@capulet.lit</jid><jid>romeo@montague.lit/Orchard</jid></never></prefs>`);
    expect(prefsElement(DEFAULT_PREFS).toString()).to.equal(`<prefs xmlns='${NS.mam}' default='always'><always/><never/></prefs>`);
  });
  it('refuses a missing or unknown default and malformed JIDs', () => {
    for (const bad of [`<prefs xmlns='${NS.mam}'/>`, `<prefs xmlns='${NS.mam}' default='maybe'/>`]) {
      expect(() => prefs(bad)).to.throw(StanzaError).with.property('condition', 'bad-request');
    }
    expect(() => prefs(`<prefs xmlns='${NS.mam}' default='always'><never><jid>@@</jid></never></prefs>`))
      .to.throw(StanzaError).with.property('condition', 'jid-malformed');
  });
  it('matches a listed bare JID on any resource and a full one exactly (§2.3)', () => {
    const p = prefs(`<prefs xmlns='${NS.mam}' default='never'><always><jid>juliet@capulet.lit</jid><jid>romeo@montague.lit/orchard</jid></always><never><jid>juliet@capulet.lit/balcony</jid></never></prefs>`);
    expect(prefsDecision(p, parseJid('juliet@capulet.lit/chamber'))).to.equal(true);
    expect(prefsDecision(p, parseJid('juliet@capulet.lit/balcony'))).to.equal(false);
    expect(prefsDecision(p, parseJid('romeo@montague.lit/orchard'))).to.equal(true);
    expect(prefsDecision(p, parseJid('romeo@montague.lit/garden'))).to.equal(false);
    expect(prefsDecision({ ...p, default: 'roster' }, parseJid('tybalt@capulet.lit'))).to.equal('roster');
    expect(prefsDecision(DEFAULT_PREFS, parseJid('anyone@example.org/x'))).to.equal(true);
  });
});

describe('account archive: ids and group commit', function () {
  this.timeout(30000);

  it('makes unpredictable, distinct, URL-safe ids', () => {
    const ids = new StanzaIds();
    const seen = new Set(Array.from({ length: 5000 }, () => ids.next()));
    expect(seen.size).to.equal(5000);
    for (const id of seen) expect(id).to.match(/^[A-Za-z0-9_-]{16}$/);
  });

  describe('ArchiveWriter', () => {
    let server: ServerCore;
    let stopServer: () => Promise<void>;
    let store: ArchiveStore;
    let batches: number[];

    before(async function () {
      ({ server, stop: stopServer } = await startUnitServer('perch-mamw-'));
      const real = server.stores.archive;
      // The real store, with each batch's size noted.
      store = { ...real, write: (entries) => { batches.push(entries.length); return real.write(entries); } };
    });
    after(async function () {
      await stopServer?.();
    });
    beforeEach(() => {
      batches = [];
    });

    const userEntry = (archive: string, n: number): ArchiveEntry => ({
      archive, stanzaId: `w${n}`, stamp: new Date(T0 + n), fromJid: 'juliet@capulet.lit/balcony', realJid: 'juliet@capulet.lit',
      body: `b${n}`, stanza: `<message type='chat'><body>b${n}</body></message>`,
    });

    it('writes what is queued in one turn as one batch, the rest in the next, in order', async () => {
      const writer = new ArchiveWriter(store, 100);
      const order: number[] = [];
      const first = Array.from({ length: 150 }, (_, n) => writer.append(userEntry('w1@localhost', n)).then(() => order.push(n)));
      await Promise.all(first);
      expect(batches).to.deep.equal([100, 50]);
      expect(order).to.deep.equal(Array.from({ length: 150 }, (_, n) => n));
      const page = await server.stores.archive.query('w1@localhost', { limit: 1000 });
      expect(page.entries.map((e) => e.stanzaId)).to.deep.equal(Array.from({ length: 150 }, (_, n) => `w${n}`));
    });

    it('gathers what arrives during a write into the next batch, and flushed() waits for all of it', async () => {
      const writer = new ArchiveWriter(store);
      void writer.append(userEntry('w2@localhost', 0));
      await new Promise((r) => setImmediate(r)); // the first batch is on its way
      for (let n = 1; n <= 20; n++) void writer.append(userEntry('w2@localhost', n));
      await writer.flushed();
      expect(batches).to.deep.equal([1, 20]);
      expect((await server.stores.archive.query('w2@localhost', { limit: 0 })).count).to.equal(21);
      await writer.flushed();
    });

    it('refuses only the entry the database refuses; the rest of its batch is written', async () => {
      const writer = new ArchiveWriter(store);
      const a = writer.append(userEntry('w3@localhost', 1));
      const b = writer.append(userEntry('w3@localhost', 1)); // same id twice: this one is refused
      const c = writer.append(userEntry('w3@localhost', 2));
      const results = await Promise.allSettled([a, b, c]);
      expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
      expect((await server.stores.archive.query('w3@localhost', { limit: 10 })).entries.map((e) => e.stanzaId)).to.deep.equal(['w1', 'w2']);
    });
  });
});
