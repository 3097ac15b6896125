// XEP-0227 import over the files the real Prosody 0.12 and ejabberd 23.01 of Debian exported
// (conformance/fixtures/xep0227), into a real server core's stores (PGlite).
import { expect } from 'chai';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NS } from '../protocol/namespaces.js';
import { deriveScramCredentials, verifyPasswordAgainstScram } from '../protocol/sasl.js';
import { parseStanzaString } from '../protocol/xml-stream.js';
import { importXep0227, Xep0227Error, type Xep0227Context, type Xep0227Report } from '../src/data/xep0227.js';
import { fileURLToPath } from 'node:url';
import type { Progress } from '../src/admin/command.js';
import type { ServerCore } from '../src/server.js';
import { startUnitServer } from './unit-server.js';
import { createPubsubStore } from '../storage/sql-pubsub.js';
import { exportXep0227 } from '../src/data/xep0227-export.js';

const FIXTURES = fileURLToPath(new URL('../../conformance/fixtures/xep0227', import.meta.url));
const PROSODY = path.join(FIXTURES, 'prosody.xml');
const EJABBERD = path.join(FIXTURES, 'ejabberd/20261205-223837.xml');
const PROSODY_PEP = path.join(FIXTURES, 'prosody-pep.xml');
const BOOKMARKS = 'urn:xmpp:bookmarks:1';

describe('XEP-0227 import (fixtures exported by Prosody and ejabberd)', function () {
  this.timeout(60000);
  let unit: { server: ServerCore; stop(): Promise<void> };
  let ctx: Xep0227Context;
  let progress: Progress[];
  const tmp: string[] = [];
  before(async () => {
    unit = await startUnitServer('perch-xep0227-');
  });
  after(async () => {
    await unit.stop();
  });
  beforeEach(() => {
    progress = [];
    const s = unit.server;
    ctx = { stores: s.stores, domain: s.domain, scramIterations: 4096, config: s.config, progress: (p) => progress.push(p) };
  });
  afterEach(async () => {
    // Deleting an account takes its roster, offline messages and user data with it; its PEP nodes go
    // with it through the pubsub module, which this test does not run.
    for (const u of await ctx.stores.users.list()) {
      await createPubsubStore(ctx.stores.db).deleteService(`${u}@${ctx.domain}`);
      await ctx.stores.users.delete(u);
    }
    await Promise.all(tmp.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  const scratch = async (name: string, text: string) => {
    const d = await mkdtemp(path.join(tmpdir(), 'perch-xep0227-file-'));
    tmp.push(d);
    await writeFile(path.join(d, name), text);
    return path.join(d, name);
  };
  const nothingStored = async () => {
    expect(await ctx.stores.users.count()).to.equal(0);
  };

  it('imports Prosody\'s accounts with their SCRAM-SHA-1 keys, rosters, a pending request, vCards and private XML', async () => {
    const r = await importXep0227(ctx, PROSODY, { host: 'prosody.test' });
    expect(r.dryRun).to.equal(false);
    expect(r.hosts).to.deep.equal([{ jid: 'prosody.test', users: 5, imported: true }]);
    expect(r.users).to.deep.equal({ created: 5, overwritten: [] });
    expect(r).to.include({ rosterItems: 6, pendingSubscriptions: 1, vcards: 2, privateXml: 1, offlineMessages: 0 });
    expect(r.sha1Only).to.have.members(['alice', 'bob', 'carol', 'dave', 'zoë']);
    expect(r.skipped).to.deep.equal([]);
    expect(progress.map((p) => p.phase)).to.include.members(['check', 'import']);

    const { stores } = ctx;
    expect((await stores.users.list()).sort()).to.deep.equal(['alice', 'bob', 'carol', 'dave', 'zoë']);
    // The stored keys are Prosody's: the original passwords verify against them.
    const zoe = (await stores.users.get('zoë'))!;
    expect(zoe.credentials.sha256).to.equal(null);
    expect(zoe.credentials.sha1.iterations).to.equal(10000);
    expect(await verifyPasswordAgainstScram('pässwörd-zoë', { hash: 'SHA-1', ...zoe.credentials.sha1 })).to.equal(true);
    expect(await verifyPasswordAgainstScram('wrong', { hash: 'SHA-1', ...zoe.credentials.sha1 })).to.equal(false);

    const roster = (await stores.roster.get('alice')).items;
    const byJid = Object.fromEntries(roster.map((i) => [i.jid, i]));
    expect(Object.keys(byJid).sort()).to.deep.equal(['bob@localhost', 'carol@localhost', 'dave@localhost', 'romeo@montague.example']);
    expect(byJid['bob@localhost']).to.deep.include({ name: 'Bobby', subscription: 'both', askOut: false });
    expect(byJid['bob@localhost']!.groups.sort()).to.deep.equal(['Friends', 'Work']);
    expect(byJid['carol@localhost']).to.deep.include({ name: 'Carol C.', subscription: 'to', groups: ['Work'] });
    expect(byJid['dave@localhost']).to.deep.include({ subscription: 'none', askOut: true, groups: [] });
    expect(byJid['romeo@montague.example']).to.deep.include({ name: 'Romeo', subscription: 'none', askOut: false, groups: ['Remote'] });
    expect((await stores.roster.getItem('carol', 'alice@localhost'))!.subscription).to.equal('from');
    const pending = await stores.roster.listPendingIn('dave');
    expect(pending.map((p) => p.jid)).to.deep.equal(['alice@localhost']);
    expect(parseStanzaString(pending[0]!.stanza)!.attrs).to.include({ from: 'alice@localhost', to: 'dave@localhost', type: 'subscribe' });

    const vcard = parseStanzaString((await stores.userData.get('alice', 'vcard', 'current'))!)!;
    expect(vcard.ns).to.equal(NS.vcard);
    expect(vcard.getChildText('FN')).to.equal('Alice Liddell');
    expect(vcard.getChild('PHOTO')!.getChildText('TYPE')).to.equal('image/png');
    expect(vcard.getChild('PHOTO')!.getChildText('BINVAL')).to.match(/^iVBORw0KGgo/);
    expect(await stores.userData.get('alice', 'private', '{fixture:prefs}prefs')).to.contain('<theme>dark</theme>');
  });

  it('imports ejabberd\'s export through its XInclude, with offline messages and their delay stamps', async () => {
    const r = await importXep0227(ctx, EJABBERD, { host: 'ejabberd.test' });
    expect(r).to.include({ rosterItems: 6, pendingSubscriptions: 1, vcards: 2, privateXml: 1, offlineMessages: 3 });
    expect(r.users.created).to.equal(5);
    // ejabberd 23.01 base64-encodes its SCRAM values twice: decoded right, the password verifies.
    const alice = (await ctx.stores.users.get('alice'))!;
    expect(alice.credentials.sha1.iterations).to.equal(4096);
    expect(alice.credentials.sha1.salt.length).to.equal(16);
    expect(await verifyPasswordAgainstScram('alice-pw', { hash: 'SHA-1', ...alice.credentials.sha1 })).to.equal(true);

    const host = await readFile(path.join(FIXTURES, 'ejabberd/20261205-223837_ejabberd_test.xml'), 'utf8');
    const stamps = [...host.matchAll(/stamp='([^']+)'/g)].map((m) => m[1]);
    const queued = await ctx.stores.offline.take('alice');
    expect(queued).to.have.length(2);
    const [first, second] = queued.map((m) => parseStanzaString(m.stanza)!);
    expect(first!.getChildText('body')).to.equal('First while you were away');
    expect(first!.attrs).to.include({ from: 'bob@localhost/fixture', to: 'alice@localhost', type: 'chat' });
    expect(first!.getChildren('delay', NS.delay)).to.have.length(1);
    expect(first!.getChild('delay', NS.delay)!.attrs).to.include({ stamp: stamps[0], from: 'localhost' });
    expect(second!.getChildText('subject')).to.equal('Plans');
    expect(second!.getChild('delay', NS.delay)!.attrs.stamp).to.equal(stamps[1]);
    const zoe = await ctx.stores.offline.take('zoë');
    expect(parseStanzaString(zoe[0]!.stanza)!.getChildText('body')).to.equal('Grüße, Zoë! ✓');
  });

  it('counts without writing on a dry run, and overwrites an existing account (reported)', async () => {
    const dry = await importXep0227(ctx, EJABBERD, { host: 'ejabberd.test', dryRun: true });
    expect(dry).to.include({ dryRun: true, rosterItems: 6, vcards: 2, offlineMessages: 3 });
    expect(dry.users.created).to.equal(5);
    await nothingStored();

    const c = deriveScramCredentials('old', 'SHA-1', 4096);
    const c256 = deriveScramCredentials('old', 'SHA-256', 4096);
    const strip = (x: typeof c) => ({ salt: x.salt, iterations: x.iterations, storedKey: x.storedKey, serverKey: x.serverKey });
    await ctx.stores.users.create('bob', { sha1: strip(c), sha256: strip(c256) });
    await ctx.stores.roster.put('bob', { jid: 'old@friend', name: null, subscription: 'both', askOut: false, approved: false, groups: [] });
    const r: Xep0227Report = await importXep0227(ctx, PROSODY, { host: 'prosody.test' });
    expect(r.users).to.deep.equal({ created: 4, overwritten: ['bob'] });
    expect((await ctx.stores.roster.get('bob')).items.map((i) => i.jid)).to.deep.equal(['alice@localhost']);
    const bob = (await ctx.stores.users.get('bob'))!;
    expect(await verifyPasswordAgainstScram('bob-pw', { hash: 'SHA-1', ...bob.credentials.sha1 })).to.equal(true);
  });

  it('refuses a file without our host, naming the hosts it has', async () => {
    const err = await importXep0227(ctx, PROSODY).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(Xep0227Error);
    expect((err as Error).message).to.contain('its hosts: prosody.test');
    await nothingStored();
  });

  it('imports nothing from a file that breaks off after complete accounts', async () => {
    const text = await readFile(PROSODY, 'utf8');
    const cut = text.slice(0, text.indexOf("<user name='dave'") + 30);
    const file = await scratch('cut.xml', cut);
    const err = await importXep0227(ctx, file, { host: 'prosody.test' }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(Xep0227Error);
    expect((err as Error).message).to.contain('cut.xml:');
    await nothingStored();
    const bad = await scratch('bad.xml', text.replace("<user name='carol'>", "<user name='carol'><oops>"));
    const err2 = await importXep0227(ctx, bad, { host: 'prosody.test' }).catch((e: unknown) => e);
    expect(err2).to.be.instanceOf(Xep0227Error);
    await nothingStored();
  });

  it('keeps a character whole where two reads of the file split it', async () => {
    // The file is read in 64 KiB pieces: a 2-byte character starting at an odd offset straddles one.
    let head = `<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='u' password='p'><offline-messages><message xmlns='jabber:client' from='a@b'><body>`;
    if (Buffer.byteLength(head) % 2 === 0) head = head.replace('<body>', ' <body>');
    const body = 'ü'.repeat(40000);
    const file = await scratch('big.xml', `${head}${body}</body></message></offline-messages></user></host></server-data>`);
    const r = await importXep0227(ctx, file);
    expect(r.offlineMessages).to.equal(1);
    const [m] = await ctx.stores.offline.take('u');
    expect(parseStanzaString(m!.stanza)!.getChildText('body')).to.equal(body);
  });

  it('takes a plain password, skips what it cannot import and says why', async () => {
    const file = await scratch('mixed.xml', `<?xml version='1.0'?>
<server-data xmlns='urn:xmpp:pie:0'>
  <host jid='localhost'>
    <user name='plain' password='s3cret'>
      <query xmlns='jabber:iq:roster'><item jid='friend@elsewhere' subscription='bogus'/><item jid='ok@elsewhere' subscription='from' approved='true'/></query>
      <pubsub xmlns='urn:xmpp:pie:0#pubsub'/>
      <offline-messages><message xmlns='jabber:client' from='ok@elsewhere/r' type='chat'><body>undated</body></message></offline-messages>
    </user>
    <user name='nokeys'/>
  </host>
  <host jid='other.example'><user name='x' password='y'/></host>
</server-data>`);
    const r = await importXep0227(ctx, file);
    expect(r.users.created).to.equal(1);
    expect(r.sha1Only).to.deep.equal([]);
    const reasons = r.skipped.map((s) => `${s.count} ${s.kind}: ${s.reason}`);
    expect(reasons).to.have.members([
      "1 roster items: subscription 'bogus'",
      "1 other data: pubsub data in urn:xmpp:pie:0#pubsub (PEP is read from XEP-0227's <pubsub/> elements): not imported",
      '1 accounts: no password and no SCRAM keys',
      '1 accounts: host other.example is not the one imported',
    ]);
    const plain = (await ctx.stores.users.get('plain'))!;
    expect(plain.credentials.sha256).to.not.equal(null);
    expect(await verifyPasswordAgainstScram('s3cret', { hash: 'SHA-256', ...plain.credentials.sha256! })).to.equal(true);
    expect(await ctx.stores.roster.getItem('plain', 'ok@elsewhere')).to.deep.include({ subscription: 'from', approved: true });
    const [m] = await ctx.stores.offline.take('plain');
    const delay = parseStanzaString(m!.stanza)!.getChild('delay', NS.delay)!;
    expect(delay.attrs.from).to.equal('localhost');
    expect(Math.abs(Date.parse(delay.attrs.stamp!) - Date.now())).to.be.below(60_000);
  });
  it('imports PEP nodes as Prosody writes them: configuration, subscriptions and items in order, each node replaced on a second import', async () => {
    const pubsub = createPubsubStore(ctx.stores.db);
    const dry = await importXep0227(ctx, PROSODY_PEP, { host: 'prosody.test', dryRun: true });
    expect(dry).to.include({ pepNodes: 3, pepItems: 4 });
    expect(await pubsub.nodes('alice@localhost')).to.deep.equal([]);

    const r = await importXep0227(ctx, PROSODY_PEP, { host: 'prosody.test' });
    expect(r).to.include({ pepNodes: 3, pepItems: 4 });
    // Prosody's form has a field this server does not: reported, per node.
    expect(r.skipped.map((s) => `${s.count} ${s.kind}: ${s.reason}`)).to.deep.equal(['3 PEP node settings: field pubsub#itemreply is not supported']);
    const nodes = await pubsub.nodes('alice@localhost');
    expect(nodes.map((n) => n.node)).to.deep.equal(['urn:xmpp:avatar:data', 'urn:xmpp:avatar:metadata', BOOKMARKS]);
    const bookmarks = nodes[2]!;
    expect(bookmarks.owner).to.equal('alice@localhost');
    expect(bookmarks.config).to.include({
      'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max', 'pubsub#persist_items': 'true', 'pubsub#notify_retract': 'true',
      'pubsub#send_last_published_item': 'on_sub_and_presence',
    });
    expect(bookmarks.config).to.not.have.any.keys('pubsub#itemreply', 'pubsub#title');
    const items = await pubsub.items('alice@localhost', BOOKMARKS);
    expect(items.map((i) => i.id)).to.deep.equal(['lab@conference.prosody.test', 'ops@conference.prosody.test']);
    expect(items[0]!.publisher).to.equal('alice@localhost');
    const lab = parseStanzaString(items[0]!.payload)!;
    expect(lab.ns).to.equal(BOOKMARKS);
    expect(lab.attrs).to.include({ autojoin: 'true', name: 'The lab' });
    expect(lab.getChildText('nick')).to.equal('alice');
    // The owner's own affiliation is implied; bob's subscription (Prosody's 'subscribed' attribute) moved to our domain.
    expect(await pubsub.affiliations('alice@localhost', BOOKMARKS)).to.deep.equal([]);
    expect(await pubsub.subscriptions('alice@localhost', 'urn:xmpp:avatar:metadata')).to.deep.equal([{ jid: 'bob@localhost', state: 'subscribed' }]);
    const [data] = await pubsub.items('alice@localhost', 'urn:xmpp:avatar:data');
    expect(parseStanzaString(data!.payload)!.text()).to.match(/^iVBORw0KGgo/);

    await pubsub.publish('alice@localhost', BOOKMARKS, { id: 'extra@conference.localhost', publisher: 'alice@localhost', payload: `<conference xmlns="${BOOKMARKS}"/>` }, null);
    await importXep0227(ctx, PROSODY_PEP, { host: 'prosody.test' });
    expect((await pubsub.items('alice@localhost', BOOKMARKS)).map((i) => i.id)).to.deep.equal(['lab@conference.prosody.test', 'ops@conference.prosody.test']);
  });

  it('keeps bookmarks private when a file gives their items without a configuration', async () => {
    const file = await scratch('items-only.xml', `<?xml version='1.0'?>
<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='u' password='p'>
  <pubsub xmlns='http://jabber.org/protocol/pubsub'>
    <items node='${BOOKMARKS}'><item id='r@conference.localhost'><conference xmlns='${BOOKMARKS}' autojoin='1'/></item><item><conference xmlns='${BOOKMARKS}'/></item></items>
    <items node='http://jabber.org/protocol/nick'><item id='current'><nick xmlns='http://jabber.org/protocol/nick'>U</nick></item></items>
  </pubsub>
</user></host></server-data>`);
    const r = await importXep0227(ctx, file);
    expect(r).to.include({ pepNodes: 2, pepItems: 2 });
    expect(r.skipped.map((s) => `${s.count} ${s.kind}: ${s.reason}`)).to.deep.equal(['1 PEP items: an item without an id or a payload']);
    const pubsub = createPubsubStore(ctx.stores.db);
    expect((await pubsub.node('u@localhost', BOOKMARKS))!.config).to.deep.equal({ 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max' });
    expect((await pubsub.node('u@localhost', 'http://jabber.org/protocol/nick'))!.config).to.deep.equal({});
  });
  it('exports accounts with their PEP nodes as XEP-0227 and imports that file back to the same state', async () => {
    await importXep0227(ctx, PROSODY_PEP, { host: 'prosody.test' });
    const pubsub = createPubsubStore(ctx.stores.db);
    await pubsub.setAffiliation('alice@localhost', BOOKMARKS, 'bob@localhost', 'member');
    const snapshot = async () => {
      const out: Record<string, unknown> = {};
      for (const n of await pubsub.nodes('alice@localhost')) {
        out[n.node] = {
          config: n.config, affiliations: await pubsub.affiliations('alice@localhost', n.node),
          subscriptions: await pubsub.subscriptions('alice@localhost', n.node),
          items: (await pubsub.items('alice@localhost', n.node)).map((i) => [i.id, i.publisher, i.payload]),
        };
      }
      return {
        pep: out, roster: await ctx.stores.roster.get('alice'), vcard: await ctx.stores.userData.get('alice', 'vcard', 'current'),
        credentials: (await ctx.stores.users.get('alice'))!.credentials, pending: await ctx.stores.roster.listPendingIn('dave'),
      };
    };
    const before = await snapshot();
    const d = await mkdtemp(path.join(tmpdir(), 'perch-xep0227-export-'));
    tmp.push(d);
    const file = path.join(d, 'out.xml');
    const r = await exportXep0227(ctx.stores, { file, domain: 'localhost' });
    expect(r).to.include({ users: 5, pepNodes: 3, pepItems: 4 });
    const text = await readFile(file, 'utf8');
    expect(text).to.match(/^<\?xml version='1.0' encoding='UTF-8'\?>\n<server-data xmlns='urn:xmpp:pie:0'>/);
    expect(text).to.include(`<pubsub xmlns='${NS.pubsubOwner}'><configure node='urn:xmpp:avatar:data'><x xmlns='jabber:x:data' type='submit'>`);

    for (const u of await ctx.stores.users.list()) {
      await pubsub.deleteService(`${u}@localhost`);
      await ctx.stores.users.delete(u);
    }
    const back = await importXep0227(ctx, file);
    expect(back).to.include({ pepNodes: 3, pepItems: 4 });
    expect(back.users.created).to.equal(5);
    expect(back.skipped).to.deep.equal([]);
    expect(await snapshot()).to.deep.equal(before);
  });
});
