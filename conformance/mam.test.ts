// Message Archive Management on accounts (XEP-0313, preferences XEP-0441, full text XEP-0431,
// stanza ids XEP-0359), end to end: real server process, real sockets, @xmpp/client.
import { expect } from 'chai';
import {
  AccountPool, iq, iqError, startServer, login, connectRaw, openSecureStream, sleep, xml,
  type RunningServer, type LoggedIn, type XmppElement,
} from './harness.js';

const NS = {
  mam: 'urn:xmpp:mam:2',
  mamExtended: 'urn:xmpp:mam:2#extended',
  fulltext: 'urn:xmpp:fulltext:0',
  sid: 'urn:xmpp:sid:0',
  rsm: 'http://jabber.org/protocol/rsm',
  data: 'jabber:x:data',
  forward: 'urn:xmpp:forward:0',
  delay: 'urn:xmpp:delay',
  carbons: 'urn:xmpp:carbons:2',
  hints: 'urn:xmpp:hints',
  chatStates: 'http://jabber.org/protocol/chatstates',
  discoInfo: 'http://jabber.org/protocol/disco#info',
  register: 'jabber:iq:register',
  client: 'jabber:client',
};

interface Rsm { max?: number; before?: string; after?: string; index?: number }
interface QueryOptions {
  fields?: Record<string, string | string[]>;
  rsm?: Rsm;
  flip?: boolean;
  /** The archive queried; the account's own when omitted. */
  to?: string;
}
interface Page {
  results: XmppElement[];
  /** The archived messages, in the order received. */
  messages: XmppElement[];
  ids: string[];
  bodies: string[];
  fin: XmppElement;
  first?: string;
  firstIndex?: string;
  last?: string;
  count?: number;
  complete: boolean;
}

const bare = (c: LoggedIn) => c.jid.split('/')[0]!;

describe('conformance: message archives (XEP-0313)', function () {
  this.timeout(30000);
  let server: RunningServer;
  const accounts = new AccountPool('mam', 40);
  let queryCounter = 0;

  before(async function () {
    this.timeout(60000);
    server = await startServer({ users: accounts.users(), registration: true });
  });
  afterEach(() => accounts.stopClients());
  after(async () => {
    await server?.stop();
  });

  const freshUser = () => accounts.fresh();

  const connect = (user: string, resource?: string): Promise<LoggedIn> => accounts.connect(server.ports.c2s, user, resource);

  /** Connects and sends initial presence, so that messages to the bare JID reach this resource. */
  async function online(user: string, resource?: string): Promise<LoggedIn> {
    const c = await connect(user, resource);
    await c.xmpp.send(xml('presence'));
    await c.waitFor((el) => el.is('presence') && el.attrs.from === c.jid);
    return c;
  }


  function queryElement(queryid: string, o: QueryOptions): XmppElement {
    const children: XmppElement[] = [];
    if (o.fields) {
      children.push(xml('x', { xmlns: NS.data, type: 'submit' },
        xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, NS.mam)),
        ...Object.entries(o.fields).map(([name, v]) =>
          xml('field', { var: name }, ...(Array.isArray(v) ? v : [v]).map((value) => xml('value', {}, value))))));
    }
    if (o.rsm) {
      const r = o.rsm;
      children.push(xml('set', { xmlns: NS.rsm },
        r.max !== undefined ? xml('max', {}, String(r.max)) : null,
        r.after !== undefined ? xml('after', {}, r.after) : null,
        r.before !== undefined ? xml('before', {}, r.before) : null,
        r.index !== undefined ? xml('index', {}, String(r.index)) : null));
    }
    if (o.flip) children.push(xml('flip-page'));
    return xml('query', { xmlns: NS.mam, queryid }, ...children);
  }

  async function mam(c: LoggedIn, o: QueryOptions = {}): Promise<Page> {
    const queryid = `q${++queryCounter}`;
    const reply = await iq(c, 'set', queryElement(queryid, o), o.to);
    const fin = reply.getChild('fin', NS.mam);
    expect(fin, 'the IQ result carries <fin/>').to.not.equal(undefined);
    // Every result arrives before the IQ result, so they are all here now.
    const results = c.received.filter((el) => el.is('message') && el.getChild('result', NS.mam)?.attrs.queryid === queryid);
    const messages = results.map((r) => r.getChild('result', NS.mam)!.getChild('forwarded', NS.forward)!.getChild('message')!);
    const set = fin!.getChild('set', NS.rsm)!;
    const first = set.getChild('first');
    const count = set.getChildText('count');
    return {
      results, messages, fin: fin!,
      ids: results.map((r) => r.getChild('result', NS.mam)!.attrs.id!),
      bodies: messages.map((m) => m.getChildText('body') ?? ''),
      ...(first ? { first: first.text(), firstIndex: first.attrs.index } : {}),
      ...(set.getChild('last') ? { last: set.getChildText('last')! } : {}),
      ...(count !== null ? { count: Number(count) } : {}),
      complete: fin!.attrs.complete === 'true',
    };
  }

  async function mamError(c: LoggedIn, o: QueryOptions): Promise<string> {
    return iqError(c, 'set', queryElement(`q${++queryCounter}`, o), o.to);
  }

  const chat = (to: string, id: string, body: string, ...extra: XmppElement[]) =>
    xml('message', { to, type: 'chat', id }, xml('body', {}, body), ...extra);
  const isMessage = (id: string) => (el: XmppElement) => el.is('message') && el.attrs.id === id;
  const stanzaIdsOf = (el: XmppElement) => el.getChildren('stanza-id', NS.sid);

  /** a sends n numbered messages to b's bare JID; b receives them all. */
  async function burst(a: LoggedIn, b: LoggedIn, n: number, prefix: string): Promise<XmppElement[]> {
    for (let i = 0; i < n; i++) await a.xmpp.send(chat(bare(b), `${prefix}${i}`, `${prefix} ${i}`));
    const got: XmppElement[] = [];
    for (let i = 0; i < n; i++) got.push(await b.waitFor(isMessage(`${prefix}${i}`)));
    return got;
  }

  describe('archiving and the stanza id', () => {
    it('archives a chat on both sides; the received message carries its archive id', async () => {
      const a = await online(freshUser());
      const b = await online(freshUser());
      const toB = await burst(a, b, 3, 'ab');
      for (let i = 0; i < 2; i++) await b.xmpp.send(chat(a.jid, `ba${i}`, `reply ${i}`));
      const toA = [await a.waitFor(isMessage('ba0')), await a.waitFor(isMessage('ba1'))];

      for (const m of toB) {
        const sids = stanzaIdsOf(m);
        expect(sids, 'exactly one stanza-id').to.have.length(1);
        expect(sids[0]!.attrs.by).to.equal(bare(b));
      }
      const pageB = await mam(b);
      expect(pageB.bodies).to.deep.equal(['ab 0', 'ab 1', 'ab 2', 'reply 0', 'reply 1']);
      expect(pageB.ids.slice(0, 3)).to.deep.equal(toB.map((m) => stanzaIdsOf(m)[0]!.attrs.id));
      expect(pageB.complete).to.equal(true);
      expect([pageB.first, pageB.firstIndex, pageB.last, pageB.count]).to.deep.equal([pageB.ids[0], '0', pageB.ids[4], 5]);

      const pageA = await mam(a);
      expect(pageA.bodies).to.deep.equal(['ab 0', 'ab 1', 'ab 2', 'reply 0', 'reply 1']);
      expect(pageA.ids.slice(3)).to.deep.equal(toA.map((m) => stanzaIdsOf(m)[0]!.attrs.id));
      // Each account has its own archive ids.
      expect(pageA.ids.filter((id) => pageB.ids.includes(id))).to.deep.equal([]);

      // §4.2: from the archive, to the requester, the original inside <forwarded/> with its delay.
      const r = pageA.results[0]!;
      expect(r.attrs.from).to.equal(bare(a));
      expect(r.attrs.to).to.equal(a.jid);
      const fwd = r.getChild('result', NS.mam)!.getChild('forwarded', NS.forward)!;
      const stamp = fwd.getChild('delay', NS.delay)!.attrs.stamp!;
      expect(Math.abs(Date.parse(stamp) - Date.now())).to.be.below(60000);
      expect(pageA.messages[0]!.attrs).to.include({ from: a.jid, to: bare(b), type: 'chat', id: 'ab0' });
      expect(pageA.messages[3]!.attrs).to.include({ from: b.jid, to: a.jid, id: 'ba0' });
      // The sender never sees its own archive id on what it sent, nor the recipient the sender's.
      expect(stanzaIdsOf(toA[0]!).map((s) => s.attrs.by)).to.deep.equal([bare(a)]);
    });

    it('archives a message for an offline account, which gets it later with its stanza id', async () => {
      const a = await online(freshUser());
      const bUser = freshUser();
      await a.xmpp.send(chat(`${bUser}@localhost`, 'off1', 'while you were away'));
      await sleep(300);
      const b = await online(bUser);
      const m = await b.waitFor(isMessage('off1'));
      const sid = stanzaIdsOf(m)[0]!;
      expect(sid.attrs.by).to.equal(bare(b));
      const page = await mam(b);
      expect(page.ids).to.deep.equal([sid.attrs.id]);
      expect(page.bodies).to.deep.equal(['while you were away']);
    });

    it('archives only one-to-one messages with content, and follows the storage hints', async () => {
      const a = await online(freshUser());
      const b = await online(freshUser());
      const state = (id: string, extra: Record<string, string> = {}) =>
        xml('message', { to: b.jid, type: 'chat', id, ...extra }, xml('composing', { xmlns: NS.chatStates }));
      await a.xmpp.send(state('s1'));
      await a.xmpp.send(chat(b.jid, 'n1', 'not stored', xml('no-store', { xmlns: NS.hints })));
      await a.xmpp.send(chat(b.jid, 'n2', 'not stored either', xml('no-permanent-store', { xmlns: NS.hints })));
      await a.xmpp.send(xml('message', { to: b.jid, type: 'headline', id: 'h1' }, xml('body', {}, 'news')));
      await a.xmpp.send(xml('message', { to: b.jid, type: 'chat', id: 'st1' }, xml('store', { xmlns: NS.hints }), xml('composing', { xmlns: NS.chatStates })));
      await a.xmpp.send(xml('message', { to: b.jid, id: 'norm1' }, xml('body', {}, 'a normal message')));
      for (const id of ['s1', 'n1', 'n2', 'h1', 'st1', 'norm1']) await b.waitFor(isMessage(id));
      // Not archived: no archive id either.
      for (const id of ['s1', 'n1', 'n2', 'h1']) {
        expect(stanzaIdsOf(b.received.find(isMessage(id))!), id).to.have.length(0);
      }
      expect((await mam(a)).messages.map((m) => m.attrs.id)).to.deep.equal(['st1', 'norm1']);
      expect((await mam(b)).messages.map((m) => m.attrs.id)).to.deep.equal(['st1', 'norm1']);
    });

    it('delivers in order whether or not each message is archived', async () => {
      const a = await online(freshUser());
      const b = await online(freshUser());
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) {
        const id = `o${i}`;
        ids.push(id);
        if (i % 3 === 0) await a.xmpp.send(xml('message', { to: b.jid, type: 'chat', id }, xml('active', { xmlns: NS.chatStates })));
        else await a.xmpp.send(chat(i % 2 ? b.jid : bare(b), id, `m${i}`));
      }
      await b.waitFor(isMessage('o39'));
      const got = b.received.filter((el) => el.is('message') && el.attrs.id?.startsWith('o')).map((el) => el.attrs.id);
      expect(got).to.deep.equal(ids);
      expect((await mam(b)).count).to.equal(26);
    });

    it('replaces a stanza id forged in the recipient\'s name', async () => {
      const a = await online(freshUser());
      const b = await online(freshUser());
      await a.xmpp.send(chat(b.jid, 'forged', 'hi',
        xml('stanza-id', { xmlns: NS.sid, by: bare(b), id: 'fake' }),
        xml('stanza-id', { xmlns: NS.sid, by: 'elsewhere@example.org', id: 'theirs' })));
      const m = await b.waitFor(isMessage('forged'));
      const mine = stanzaIdsOf(m).filter((s) => s.attrs.by === bare(b));
      expect(mine).to.have.length(1);
      expect(mine[0]!.attrs.id).to.not.equal('fake');
      expect((await mam(b)).ids).to.deep.equal([mine[0]!.attrs.id]);
      // Ids by other entities are not this server's business.
      expect(stanzaIdsOf(m).some((s) => s.attrs.id === 'theirs')).to.equal(true);
    });

    it('gives carbon copies the archive id of the account they are for', async () => {
      const aUser = freshUser();
      const bUser = freshUser();
      const a1 = await online(aUser, 'one');
      const a2 = await online(aUser, 'two');
      const b1 = await online(bUser, 'one');
      const b2 = await online(bUser, 'two');
      for (const c of [a2, b2]) await iq(c, 'set', xml('enable', { xmlns: NS.carbons }));
      await a1.xmpp.send(chat(b1.jid, 'cc1', 'carbon copy'));
      const delivered = await b1.waitFor(isMessage('cc1'));
      expect(stanzaIdsOf(delivered).map((s) => s.attrs.by)).to.deep.equal([bUser + '@localhost']);
      const received = await b2.waitFor((el) => el.is('message') && !!el.getChild('received', NS.carbons));
      const inner = received.getChild('received', NS.carbons)!.getChild('forwarded', NS.forward)!.getChild('message')!;
      expect(stanzaIdsOf(inner).map((s) => s.attrs)).to.deep.equal([stanzaIdsOf(delivered)[0]!.attrs]);
      // §3.5: a sent carbon carries the sender's archive id.
      const sent = await a2.waitFor((el) => el.is('message') && !!el.getChild('sent', NS.carbons));
      const sentInner = sent.getChild('sent', NS.carbons)!.getChild('forwarded', NS.forward)!.getChild('message')!;
      const sentIds = stanzaIdsOf(sentInner);
      expect(sentIds.map((s) => s.attrs.by)).to.deep.equal([aUser + '@localhost']);
      expect((await mam(a2)).ids).to.deep.equal([sentIds[0]!.attrs.id]);
    });

    it('archives a message whose address is written unnormalised', async () => {
      const a = await online(freshUser());
      const b = await online(freshUser(), 'Desk');
      const [local, rest] = b.jid.split('@') as [string, string];
      await a.xmpp.send(chat(`${local.toUpperCase()}@${rest.toUpperCase().replace('/DESK', '/Desk')}`, 'caps1', 'shouting'));
      const m = await b.waitFor(isMessage('caps1'));
      expect(stanzaIdsOf(m).map((s) => s.attrs.by)).to.deep.equal([bare(b)]);
      expect((await mam(b)).bodies).to.deep.equal(['shouting']);
      const sent = await mam(a, { fields: { with: b.jid } });
      expect(sent.bodies).to.deep.equal(['shouting']);
    });

    it('archives a message to the account itself once', async () => {
      const a1 = await online(freshUser(), 'one');
      await a1.xmpp.send(chat(bare(a1), 'self1', 'note to self'));
      await a1.waitFor(isMessage('self1'));
      const page = await mam(a1);
      expect(page.bodies).to.deep.equal(['note to self']);
      // §4.1.1: with = the account's own JID finds exactly such messages.
      expect((await mam(a1, { fields: { with: bare(a1) } })).bodies).to.deep.equal(['note to self']);
    });
  });

  describe('queries', () => {
    let a: LoggedIn;
    let b: LoggedIn;
    let c: LoggedIn;
    /** a's archive: 25 messages to b, then 2 from b's resource, then 2 to c. */
    let all: Page;

    before(async function () {
      this.timeout(30000);
      a = await login(server.ports.c2s, freshUser(), 'pw');
      b = await login(server.ports.c2s, freshUser(), 'pw', { resource: 'desk' });
      c = await login(server.ports.c2s, freshUser(), 'pw');
      for (const x of [a, b, c]) {
        await x.xmpp.send(xml('presence'));
        await x.waitFor((el) => el.is('presence') && el.attrs.from === x.jid);
      }
      const words = ['apple', 'banana', 'cherry', 'Banana split', 'durian'];
      for (let i = 0; i < 25; i++) await a.xmpp.send(chat(bare(b), `q${i}`, `${words[i % 5]} ${i}`));
      await b.waitFor(isMessage('q24'));
      // Later stamps for the rest, so that start/end can separate them.
      await sleep(1100);
      await b.xmpp.send(chat(a.jid, 'fromb0', 'banana from b'));
      await b.xmpp.send(chat(a.jid, 'fromb1', 'hello from b'));
      await a.waitFor(isMessage('fromb1'));
      await a.xmpp.send(chat(bare(c), 'toc0', 'hi c'));
      await a.xmpp.send(chat(c.jid, 'toc1', 'banana for c'));
      await c.waitFor(isMessage('toc1'));
      all = await mam(a, { rsm: { max: 100 } });
    });
    after(async () => {
      await Promise.all([a, b, c].map((x) => x?.stop()));
    });

    const ids = (from: number, to: number) => all.ids.slice(from, to);

    it('returns everything in order with a complete fin', () => {
      expect(all.ids).to.have.length(29);
      expect(all.messages.map((m) => m.attrs.id)).to.deep.equal([
        ...Array.from({ length: 25 }, (_, i) => `q${i}`), 'fromb0', 'fromb1', 'toc0', 'toc1']);
      expect([all.complete, all.count, all.firstIndex]).to.deep.equal([true, 29, '0']);
    });

    it('pages backwards from the last page with RSM <before/> (§4.3.3)', async () => {
      const p1 = await mam(a, { rsm: { max: 10, before: '' } });
      expect(p1.ids).to.deep.equal(ids(19, 29));
      expect([p1.complete, p1.count, p1.firstIndex, p1.first, p1.last]).to.deep.equal([false, 29, '19', all.ids[19], all.ids[28]]);
      const p2 = await mam(a, { rsm: { max: 10, before: p1.first! } });
      expect(p2.ids).to.deep.equal(ids(9, 19));
      const p3 = await mam(a, { rsm: { max: 10, before: p2.first! } });
      expect(p3.ids).to.deep.equal(ids(0, 9));
      expect([p3.complete, p3.firstIndex]).to.deep.equal([true, '0']);
    });

    it('pages forwards with <after/> and jumps with <index/>', async () => {
      const p1 = await mam(a, { rsm: { max: 12 } });
      expect(p1.ids).to.deep.equal(ids(0, 12));
      expect(p1.complete).to.equal(false);
      const p2 = await mam(a, { rsm: { max: 12, after: p1.last! } });
      expect(p2.ids).to.deep.equal(ids(12, 24));
      const p3 = await mam(a, { rsm: { max: 12, after: p2.last! } });
      expect(p3.ids).to.deep.equal(ids(24, 29));
      expect(p3.complete).to.equal(true);
      const jumped = await mam(a, { rsm: { max: 3, index: 20 } });
      expect(jumped.ids).to.deep.equal(ids(20, 23));
      expect(jumped.firstIndex).to.equal('20');
    });

    it('without <max/> returns a server-limited page that says it is not complete', async () => {
      for (let i = 0; i < 30; i++) await a.xmpp.send(chat(bare(c), `bulk${i}`, `bulk ${i}`));
      await c.waitFor(isMessage('bulk29'));
      const p = await mam(a);
      expect(p.ids).to.have.length(50);
      expect([p.complete, p.count]).to.deep.equal([false, 59]);
      const huge = await mam(a, { rsm: { max: 100000 } });
      expect(huge.ids).to.have.length(59);
      expect(huge.complete).to.equal(true);
    });

    it('counts without results when <max/> is 0', async () => {
      const p = await mam(a, { fields: { with: bare(b) }, rsm: { max: 0 } });
      expect(p.results).to.have.length(0);
      expect(p.count).to.equal(27);
      expect(p.first).to.equal(undefined);
    });

    it('filters by a bare JID (every resource) or a full JID (exactly) (§4.1.1)', async () => {
      const withB = await mam(a, { fields: { with: bare(b) }, rsm: { max: 100 } });
      expect(withB.ids).to.deep.equal(ids(0, 27));
      const fromDesk = await mam(a, { fields: { with: b.jid } });
      expect(fromDesk.messages.map((m) => m.attrs.id)).to.deep.equal(['fromb0', 'fromb1']);
      const toC = await mam(a, { fields: { with: bare(c) }, rsm: { max: 2 } });
      expect(toC.messages.map((m) => m.attrs.id)).to.deep.equal(['toc0', 'toc1']);
      const toCFull = await mam(a, { fields: { with: c.jid } });
      expect(toCFull.messages.map((m) => m.attrs.id)).to.deep.equal(['toc1']);
      // JIDs are compared normalised.
      const upper = await mam(a, { fields: { with: bare(b).toUpperCase() }, rsm: { max: 0 } });
      expect(upper.count).to.equal(27);
      expect((await mam(a, { fields: { with: 'nobody@localhost' } })).count).to.equal(0);
    });

    it('filters by time with start and end, both inclusive (§4.1.2)', async () => {
      const stampOf = (i: number) =>
        all.results[i]!.getChild('result', NS.mam)!.getChild('forwarded', NS.forward)!.getChild('delay', NS.delay)!.attrs.stamp!;
      const since = await mam(a, { fields: { start: stampOf(25) }, rsm: { max: 100 } });
      expect(since.ids.slice(0, 4)).to.deep.equal(ids(25, 29));
      const until = await mam(a, { fields: { end: stampOf(24) }, rsm: { max: 100 } });
      expect(until.ids.at(-1)).to.equal(all.ids[24]);
      expect(until.ids).to.not.include(all.ids[25]);
      const both = await mam(a, { fields: { start: stampOf(25), end: stampOf(26) } });
      expect(both.ids).to.include.members(ids(25, 27));
      expect(both.ids).to.not.include(all.ids[24]);
      expect((await mam(a, { fields: { start: '2000-01-01T00:00:00Z', end: '2000-01-02T00:00:00Z' } })).count).to.equal(0);
    });

    it('fetches by ids, and between after-id and before-id (§4.1.3)', async () => {
      const picked = await mam(a, { fields: { ids: [all.ids[7]!, all.ids[2]!] } });
      expect(picked.ids).to.deep.equal([all.ids[2], all.ids[7]]);
      const between = await mam(a, { fields: { 'after-id': all.ids[3]!, 'before-id': all.ids[8]! } });
      expect(between.ids).to.deep.equal(ids(4, 8));
      expect(between.complete).to.equal(true);
      const afterOnly = await mam(a, { fields: { 'after-id': all.ids[26]! }, rsm: { max: 2 } });
      expect(afterOnly.ids).to.deep.equal(ids(27, 29));
      // after-id does not page backwards, unlike RSM <before/>.
      const lastAfter = await mam(a, { fields: { 'after-id': all.ids[3]! }, rsm: { max: 2, before: '' } });
      expect(lastAfter.ids.length).to.equal(2);
    });

    it('flips a page without changing it (§4.3.4)', async () => {
      const page = await mam(a, { rsm: { max: 5, before: '' } });
      const flipped = await mam(a, { rsm: { max: 5, before: '' }, flip: true });
      expect(flipped.ids).to.deep.equal([...page.ids].reverse());
      expect([flipped.first, flipped.last, flipped.count, flipped.complete]).to.deep.equal([page.first, page.last, page.count, page.complete]);
    });

    it('searches the bodies (XEP-0431), newest first, paged with RSM', async () => {
      const hits = await mam(a, { fields: { [`{${NS.fulltext}}fulltext`]: 'BANANA' }, rsm: { max: 100 } });
      const expected = ['toc1', 'fromb0', ...[23, 21, 18, 16, 13, 11, 8, 6, 3, 1].map((i) => `q${i}`)];
      expect(hits.messages.map((m) => m.attrs.id)).to.deep.equal(expected);
      expect(hits.count).to.equal(12);
      const p1 = await mam(a, { fields: { [`{${NS.fulltext}}fulltext`]: 'banana' }, rsm: { max: 5 } });
      expect(p1.messages.map((m) => m.attrs.id)).to.deep.equal(expected.slice(0, 5));
      expect(p1.complete).to.equal(false);
      const p2 = await mam(a, { fields: { [`{${NS.fulltext}}fulltext`]: 'banana' }, rsm: { max: 5, after: p1.last! } });
      expect(p2.messages.map((m) => m.attrs.id)).to.deep.equal(expected.slice(5, 10));
      const narrowed = await mam(a, { fields: { [`{${NS.fulltext}}fulltext`]: 'banana split', with: bare(b) } });
      expect(narrowed.messages.map((m) => m.attrs.id)).to.deep.equal(['q23', 'q18', 'q13', 'q8', 'q3']);
      expect((await mam(a, { fields: { [`{${NS.fulltext}}fulltext`]: 'kiwi' } })).count).to.equal(0);
    });

    it('refuses malformed queries and unknown ids', async () => {
      expect(await mamError(a, { fields: { start: 'yesterday' } })).to.equal('bad-request');
      expect(await mamError(a, { fields: { end: '2020-13-01T00:00:00Z' } })).to.equal('bad-request');
      expect(await mamError(a, { fields: { with: 'a@b@c' } })).to.equal('bad-request');
      expect(await mamError(a, { rsm: { max: -1 } as unknown as Rsm })).to.equal('bad-request');
      expect(await mamError(a, { rsm: { after: 'no-such-id' } })).to.equal('item-not-found');
      expect(await mamError(a, { rsm: { before: 'no-such-id' } })).to.equal('item-not-found');
      expect(await mamError(a, { fields: { 'after-id': 'no-such-id' } })).to.equal('item-not-found');
      expect(await mamError(a, { fields: { 'before-id': 'no-such-id' } })).to.equal('item-not-found');
      expect(await mamError(a, { fields: { ids: [all.ids[0]!, 'no-such-id'] } })).to.equal('item-not-found');
      // An id of another account's archive is unknown in this one.
      const other = await mam(b, { rsm: { max: 1 } });
      expect(await mamError(a, { rsm: { after: other.ids[0]! } })).to.equal('item-not-found');
      // §4.1.5: a field the server does not know.
      expect(await mamError(a, { fields: { 'urn:example:unknown': 'x' } })).to.equal('feature-not-implemented');
    });

    it('advertises the query form, including full-text search (§4.1.5)', async () => {
      const reply = await iq(a, 'get', xml('query', { xmlns: NS.mam }));
      const form = reply.getChild('query', NS.mam)!.getChild('x', NS.data)!;
      expect(form.attrs.type).to.equal('form');
      const fields = form.getChildren('field').map((f) => f.attrs.var);
      expect(fields).to.include.members(['FORM_TYPE', 'with', 'start', 'end', 'before-id', 'after-id', 'ids', `{${NS.fulltext}}fulltext`]);
      expect(form.getChildren('field').some((f) => !!f.getChild('required'))).to.equal(false);
    });

    it('gives the archive metadata (§5)', async () => {
      const reply = await iq(a, 'get', xml('metadata', { xmlns: NS.mam }));
      const md = reply.getChild('metadata', NS.mam)!;
      expect(md.getChild('start')!.attrs.id).to.equal(all.ids[0]);
      const end = await mam(a, { rsm: { max: 1, before: '' } });
      expect(md.getChild('end')!.attrs.id).to.equal(end.ids[0]);
      expect(Date.parse(md.getChild('start')!.attrs.timestamp!)).to.be.a('number').and.not.NaN;
    });

    it('refuses another account access to this archive (§8.1)', async () => {
      expect(await mamError(b, { to: bare(a) })).to.equal('forbidden');
      expect(await iqError(b, 'get', xml('prefs', { xmlns: NS.mam }), bare(a))).to.equal('forbidden');
      expect(await iqError(b, 'set', xml('prefs', { xmlns: NS.mam, default: 'never' }), bare(a))).to.equal('forbidden');
      // Its own archive, addressed explicitly, is fine.
      expect((await mam(b, { to: bare(b), rsm: { max: 0 } })).count).to.be.above(0);
    });
  });

  describe('service discovery', () => {
    it('advertises MAM, its extensions and stanza ids on the account (§7)', async () => {
      const a = await connect(freshUser());
      const reply = await iq(a, 'get', xml('query', { xmlns: NS.discoInfo }), bare(a));
      const features = reply.getChild('query', NS.discoInfo)!.getChildren('feature').map((f) => f.attrs.var);
      expect(features).to.include.members([NS.mam, NS.mamExtended, NS.fulltext, NS.sid]);
    });
  });

  describe('preferences (XEP-0441)', () => {
    const prefs = (def: string, always: string[] = [], never: string[] = []) =>
      xml('prefs', { xmlns: NS.mam, default: def },
        xml('always', {}, ...always.map((j) => xml('jid', {}, j))),
        xml('never', {}, ...never.map((j) => xml('jid', {}, j))));
    const read = (el: XmppElement) => {
      const p = el.getChild('prefs', NS.mam)!;
      const list = (n: string) => p.getChild(n)!.getChildren('jid').map((j) => j.text());
      return { default: p.attrs.default, always: list('always'), never: list('never') };
    };

    it('defaults to archiving everything, and stores normalised settings', async () => {
      const a = await connect(freshUser());
      expect(read(await iq(a, 'get', xml('prefs', { xmlns: NS.mam })))).to.deep.equal({ default: 'always', always: [], never: [] });
      const set = await iq(a, 'set', prefs('roster', ['JULIET@Example.ORG', 'juliet@example.org'], ['Romeo@EXAMPLE.org/Orchard']));
      const expected = { default: 'roster', always: ['juliet@example.org'], never: ['romeo@example.org/Orchard'] };
      expect(read(set)).to.deep.equal(expected);
      expect(read(await iq(a, 'get', xml('prefs', { xmlns: NS.mam })))).to.deep.equal(expected);
      expect(await iqError(a, 'set', xml('prefs', { xmlns: NS.mam, default: 'sometimes' }))).to.equal('bad-request');
      expect(await iqError(a, 'set', prefs('always', ['not a jid@@']))).to.equal('jid-malformed');
    });

    it('does not archive what the preferences exclude, on either side', async () => {
      const a = await online(freshUser());
      const b = await online(freshUser());
      const c = await online(freshUser());
      await iq(a, 'set', prefs('always', [], [bare(b)]));
      await a.xmpp.send(chat(b.jid, 'p1', 'to b'));
      await b.xmpp.send(chat(a.jid, 'p2', 'from b'));
      await a.xmpp.send(chat(c.jid, 'p3', 'to c'));
      const fromB = await a.waitFor(isMessage('p2'));
      await b.waitFor(isMessage('p1'));
      await c.waitFor(isMessage('p3'));
      expect(stanzaIdsOf(fromB)).to.have.length(0);
      expect((await mam(a)).messages.map((m) => m.attrs.id)).to.deep.equal(['p3']);
      // b's own archive is b's business.
      expect((await mam(b)).messages.map((m) => m.attrs.id)).to.deep.equal(['p1', 'p2']);

      // default never, with c always archived.
      await iq(a, 'set', prefs('never', [bare(c)]));
      await a.xmpp.send(chat(b.jid, 'p4', 'to b again'));
      await a.xmpp.send(chat(c.jid, 'p5', 'to c again'));
      await c.waitFor(isMessage('p5'));
      await b.waitFor(isMessage('p4'));
      expect((await mam(a)).messages.map((m) => m.attrs.id)).to.deep.equal(['p3', 'p5']);
    });

    it('archives only roster contacts with default roster', async () => {
      const a = await online(freshUser());
      const b = await online(freshUser());
      const c = await online(freshUser());
      await iq(a, 'set', xml('query', { xmlns: 'jabber:iq:roster' }, xml('item', { jid: bare(b) })));
      await iq(a, 'set', prefs('roster'));
      await b.xmpp.send(chat(a.jid, 'r1', 'from a contact'));
      await c.xmpp.send(chat(a.jid, 'r2', 'from a stranger'));
      await a.xmpp.send(chat(c.jid, 'r3', 'to a stranger'));
      await a.xmpp.send(chat(b.jid, 'r4', 'to a contact'));
      await a.waitFor(isMessage('r1'));
      await a.waitFor(isMessage('r2'));
      await b.waitFor(isMessage('r4'));
      expect((await mam(a)).messages.map((m) => m.attrs.id)).to.deep.equal(['r1', 'r4']);
    });
  });

  describe('account deletion', () => {
    it('deletes the archive with the account', async () => {
      const name = freshUser();
      const a = await online(name);
      const b = await online(freshUser());
      await burst(a, b, 2, 'del');
      expect((await mam(a)).count).to.equal(2);
      await iq(a, 'set', xml('query', { xmlns: NS.register }, xml('remove')));
      await a.disconnected;
      // Registered again under the same name: a new, empty archive.
      const raw = await connectRaw(server.ports.c2s);
      await openSecureStream(raw);
      raw.send(`<iq type='set' id='reg'><query xmlns='${NS.register}'><username>${name}</username><password>pw</password></query></iq>`);
      expect(await raw.waitFor(/<iq[^>]*id=['"]reg['"][^>]*(\/>|>[\s\S]*?<\/iq>)/)).to.match(/type=['"]result['"]/);
      raw.close();
      const again = await connect(name);
      expect((await mam(again)).count).to.equal(0);
      // The partner keeps its own copy.
      expect((await mam(b)).count).to.equal(2);
    });
  });
});
