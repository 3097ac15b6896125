// Moving from Prosody or ejabberd: their real XEP-0227 exports (conformance/fixtures/xep0227)
// imported with the CLI, on the database and through a running server's admin socket; then the
// imported accounts sign in over XMPP with their original passwords (SCRAM) and find their rosters,
// vCards, pending subscription requests and offline messages with the original delay stamps. PEP:
// Prosody's form of XEP-0227 §2.10 brings bookmarks and avatars over; and Perch's own XEP-0227 export
// carries bookmarks and an avatar published over XMPP to a fresh server, read back over XMPP.
import { expect } from 'chai';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  REPO_ROOT, connectRaw, openSecureStream, startServer, login, iq, iqError, xml, perch, expectOk, rawLogin,
  type RunningServer, type LoggedIn, type XmppElement,
} from './harness.js';

const FIXTURES = path.join(REPO_ROOT, 'conformance/fixtures/xep0227');
const PROSODY = path.join(FIXTURES, 'prosody.xml');
const PROSODY_PEP = path.join(FIXTURES, 'prosody-pep.xml');
const PUBSUB = 'http://jabber.org/protocol/pubsub';
const BOOKMARKS = 'urn:xmpp:bookmarks:1';
const EJABBERD = path.join(FIXTURES, 'ejabberd/20261205-223837.xml');
const EJABBERD_HOST = path.join(FIXTURES, 'ejabberd/20261205-223837_ejabberd_test.xml');
const DELAY = 'urn:xmpp:delay';

/** SCRAM over a real socket after STARTTLS, computed here: 'success' or the failure's condition. */
async function scramLogin(port: number, user: string, password: string, hash: 'SHA-1' | 'SHA-256'): Promise<string> {
  const raw = await connectRaw(port);
  try {
    await openSecureStream(raw);
    const alg = hash === 'SHA-1' ? 'sha1' : 'sha256';
    const cnonce = randomBytes(12).toString('base64');
    const bare = `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${cnonce}`;
    raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-${hash}'>${Buffer.from(`n,,${bare}`).toString('base64')}</auth>`);
    const challenge = await raw.waitFor(/<challenge[^>]*>([^<]*)<\/challenge>|<failure[\s\S]*?<\/failure>/);
    if (challenge.startsWith('<failure')) return /<([a-z-]+)\/>/.exec(challenge)?.[1] ?? challenge;
    const serverFirst = Buffer.from(/>([^<]*)</.exec(challenge)![1]!, 'base64').toString();
    const f = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
    const salted = pbkdf2Sync(password.normalize('NFKC'), Buffer.from(f.s!, 'base64'), Number(f.i), hash === 'SHA-1' ? 20 : 32, alg);
    const clientKey = createHmac(alg, salted).update('Client Key').digest();
    const storedKey = createHash(alg).update(clientKey).digest();
    const withoutProof = `c=biws,r=${f.r}`;
    const authMessage = `${bare},${serverFirst},${withoutProof}`;
    const signature = createHmac(alg, storedKey).update(authMessage).digest();
    const proof = Buffer.from(clientKey.map((x, i) => x ^ signature[i]!));
    raw.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${Buffer.from(`${withoutProof},p=${proof.toString('base64')}`).toString('base64')}</response>`);
    const outcome = await raw.waitFor(/<success[^>]*(\/>|>[\s\S]*?<\/success>)|<failure[\s\S]*?<\/failure>/);
    return outcome.startsWith('<success') ? 'success' : /<([a-z-]+)\/>/.exec(outcome)?.[1] ?? outcome;
  } finally {
    raw.close();
  }
}

const ROSTER = 'jabber:iq:roster';
function rosterItems(result: XmppElement): Record<string, { name?: string; subscription: string; ask?: string; groups: string[] }> {
  const out: Record<string, { name?: string; subscription: string; ask?: string; groups: string[] }> = {};
  for (const item of result.getChild('query', ROSTER)!.getChildren('item')) {
    out[item.attrs.jid] = {
      ...(item.attrs.name ? { name: item.attrs.name } : {}),
      subscription: item.attrs.subscription,
      ...(item.attrs.ask ? { ask: item.attrs.ask } : {}),
      groups: item.getChildren('group').map((g: XmppElement) => g.text()).sort(),
    };
  }
  return out;
}

describe('conformance: XEP-0227 import of Prosody and ejabberd exports, and export', function () {
  this.timeout(120000);
  const dirs: string[] = [];
  const servers: RunningServer[] = [];
  const clients: LoggedIn[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop()));
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true, maxRetries: 3 })));
  });
  async function migratedDir(): Promise<string> {
    const d = await mkdtemp(path.join(tmpdir(), 'perch-xep0227-'));
    dirs.push(d);
    expectOk(await perch(['migrate'], { dataDir: d }));
    return d;
  }
  async function userList(dataDir: string): Promise<string> {
    return expectOk(await perch(['user', 'list'], { dataDir })).stdout;
  }

  it('Prosody: a dry run changes nothing; the import on the database lets accounts sign in with their old passwords', async () => {
    const dataDir = await migratedDir();
    const dry = expectOk(await perch(['import', PROSODY, '--host', 'prosody.test', '--dry-run', '--json'], { dataDir }));
    const out = JSON.parse(dry.stdout).output;
    expect(out).to.deep.include({ dryRun: true, rosterItems: 6, pendingSubscriptions: 1, vcards: 2, offlineMessages: 0 });
    expect(out.users).to.deep.equal({ created: 5, overwritten: [] });

    // Nothing was written: the import proper still finds every account new.
    const run = expectOk(await perch(['import', PROSODY, '--host', 'prosody.test'], { dataDir }));
    expect(run.stdout).to.contain('accounts: 5 new, 0 overwritten');
    expect(run.stdout).to.contain('roster items: 6');

    const server = await startServer({ dataDir });
    servers.push(server);
    const port = server.ports.c2s;
    // Prosody kept SCRAM-SHA-1 keys only: SCRAM-SHA-1 signs in with the old password, SHA-256 cannot yet.
    expect(await scramLogin(port, 'zoë', 'pässwörd-zoë', 'SHA-1')).to.equal('success');
    expect(await scramLogin(port, 'zoë', 'wrong', 'SHA-1')).to.equal('not-authorized');
    expect(await scramLogin(port, 'carol', 'carol-pw', 'SHA-256')).to.equal('not-authorized');
    // A PLAIN sign-in (over TLS) checks the password against the SHA-1 keys and derives SHA-256 ones.
    const plain = await rawLogin(port, 'carol', 'carol-pw');
    plain.close();
    expect(await scramLogin(port, 'carol', 'carol-pw', 'SHA-256')).to.equal('success');

    const alice = await login(port, 'alice', 'alice-pw');
    clients.push(alice);
    const roster = rosterItems(await iq(alice, 'get', xml('query', { xmlns: ROSTER })));
    expect(roster).to.deep.equal({
      'bob@localhost': { name: 'Bobby', subscription: 'both', groups: ['Friends', 'Work'] },
      'carol@localhost': { name: 'Carol C.', subscription: 'to', groups: ['Work'] },
      'dave@localhost': { name: 'Dave', subscription: 'none', ask: 'subscribe', groups: [] },
      'romeo@montague.example': { name: 'Romeo', subscription: 'none', groups: ['Remote'] },
    });
    const vcard = (await iq(alice, 'get', xml('vCard', { xmlns: 'vcard-temp' }))).getChild('vCard', 'vcard-temp')!;
    expect(vcard.getChildText('FN')).to.equal('Alice Liddell');
    expect(vcard.getChild('PHOTO')!.getChildText('BINVAL')).to.match(/^iVBORw0KGgo/);
    const bobCard = (await iq(alice, 'get', xml('vCard', { xmlns: 'vcard-temp' }), 'bob@localhost')).getChild('vCard', 'vcard-temp')!;
    expect(bobCard.getChildText('FN')).to.equal('Bob Builder');

    // dave never answered alice's request: it waits for him at his next sign-in.
    const dave = await login(port, 'dave', 'dave-pw');
    clients.push(dave);
    await dave.xmpp.send(xml('presence'));
    const request = await dave.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribe');
    expect(request.attrs.from).to.equal('alice@localhost');
  });

  it('ejabberd: imported through the running server, offline messages arrive with their original delay stamps', async () => {
    const server = await startServer();
    servers.push(server);
    const run = expectOk(await perch(['import', EJABBERD, '--host', 'ejabberd.test', '--json'], { dataDir: server.dataDir }));
    const out = JSON.parse(run.stdout).output;
    expect(out).to.deep.include({ dryRun: false, rosterItems: 6, vcards: 2, offlineMessages: 3, skipped: [] });
    const stamps = [...(await readFile(EJABBERD_HOST, 'utf8')).matchAll(/stamp='([^']+)'/g)].map((m) => m[1]);
    expect(stamps).to.have.length(3);
    const port = server.ports.c2s;

    expect(await scramLogin(port, 'bob', 'bob-pw', 'SHA-1')).to.equal('success');
    const alice = await login(port, 'alice', 'alice-pw');
    clients.push(alice);
    expect(rosterItems(await iq(alice, 'get', xml('query', { xmlns: ROSTER })))['bob@localhost'])
      .to.deep.equal({ name: 'Bobby', subscription: 'both', groups: ['Friends', 'Work'] });
    await alice.xmpp.send(xml('presence'));
    const first = await alice.waitFor((el) => el.is('message') && el.getChildText('body') === 'First while you were away');
    const second = await alice.waitFor((el) => el.is('message') && el.getChildText('body') === 'Second, with a subject');
    expect(first.attrs.from).to.equal('bob@localhost/fixture');
    expect(first.getChildren('delay', DELAY).map((d: XmppElement) => d.attrs.stamp)).to.deep.equal([stamps[0]]);
    expect(second.getChild('delay', DELAY)!.attrs.stamp).to.equal(stamps[1]);
    expect(second.getChildText('subject')).to.equal('Plans');

    // A raw session: @xmpp/client does not encode a non-ASCII username as UTF-8.
    const zoe = await rawLogin(port, 'zoë', 'pässwörd-zoë');
    try {
      zoe.send('<presence/>');
      const m = await zoe.waitFor(/<message[\s\S]*?<\/message>/);
      expect(m).to.contain('Grüße, Zoë! ✓');
      expect(m).to.match(new RegExp(`<delay[^>]*stamp=['"]${stamps[2]!.replace(/\./g, '\\.')}['"]`));
    } finally {
      zoe.close();
    }
  });

  it('a malformed file or one without our host: a clear error and nothing imported', async () => {
    const dataDir = await migratedDir();
    const text = await readFile(PROSODY, 'utf8');
    const broken = path.join(dataDir, 'broken.xml');
    await writeFile(broken, text.replace("<user name='dave'>", "<user name='dave'><unclosed>"));
    const r = await perch(['import', broken, '--host', 'prosody.test'], { dataDir });
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/broken\.xml:\d+:\d+: .*nothing was imported/);
    expect(await userList(dataDir)).to.not.contain('alice');

    const other = await perch(['import', PROSODY], { dataDir });
    expect(other.code).to.equal(1);
    expect(other.stderr).to.contain('no accounts of host localhost (its hosts: prosody.test)');
    const usage = await perch(['import'], { dataDir });
    expect(usage.code).to.equal(2);
  });
  it('Prosody with PEP: bookmarks (autojoin) and the avatar come over and are read back over XMPP; bookmarks stay private', async () => {
    const server = await startServer();
    servers.push(server);
    const run = expectOk(await perch(['import', PROSODY_PEP, '--host', 'prosody.test', '--json'], { dataDir: server.dataDir }));
    expect(JSON.parse(run.stdout).output).to.deep.include({ pepNodes: 3, pepItems: 4 });
    const port = server.ports.c2s;
    const items = async (c: LoggedIn, node: string): Promise<XmppElement[]> => {
      const r = await iq(c, 'get', xml('pubsub', { xmlns: PUBSUB }, xml('items', { node })), 'alice@localhost');
      return r.getChild('pubsub', PUBSUB)!.getChild('items')!.getChildren('item');
    };
    const alice = await login(port, 'alice', 'alice-pw');
    clients.push(alice);
    const bookmarks = await items(alice, BOOKMARKS);
    expect(bookmarks.map((i) => i.attrs.id)).to.deep.equal(['lab@conference.prosody.test', 'ops@conference.prosody.test']);
    const lab = bookmarks[0]!.getChild('conference', BOOKMARKS)!;
    expect(lab.attrs).to.include({ autojoin: 'true', name: 'The lab' });
    expect(lab.getChildText('nick')).to.equal('alice');
    expect(bookmarks[1]!.getChild('conference', BOOKMARKS)!.attrs.autojoin).to.equal('false');

    // bob is alice's contact (both): the avatar (access presence) is his to read, the bookmarks are not.
    const bob = await login(port, 'bob', 'bob-pw');
    clients.push(bob);
    const [metadata] = await items(bob, 'urn:xmpp:avatar:metadata');
    const info = metadata!.getChild('metadata', 'urn:xmpp:avatar:metadata')!.getChild('info')!;
    const [data] = await items(bob, 'urn:xmpp:avatar:data');
    expect(data!.attrs.id).to.equal(info.attrs.id);
    const png = Buffer.from(data!.getChildText('data', 'urn:xmpp:avatar:data')!, 'base64');
    expect(createHash('sha1').update(png).digest('hex')).to.equal(info.attrs.id);
    expect(png.length).to.equal(Number(info.attrs.bytes));
    expect(await iqError(bob, 'get', xml('pubsub', { xmlns: PUBSUB }, xml('items', { node: BOOKMARKS })), 'alice@localhost')).to.equal('not-allowed');
  });
  it('Perch to Perch in XEP-0227: bookmarks and an avatar published over XMPP are exported, imported into a fresh server and read back over XMPP', async () => {
    const a = await startServer({ users: { alice: 'alice-pw', bob: 'bob-pw' } });
    servers.push(a);
    const alice = await login(a.ports.c2s, 'alice', 'alice-pw');
    clients.push(alice);
    const publish = (node: string, id: string, payload: XmppElement, options: Record<string, string> = {}) => iq(alice, 'set', xml('pubsub', { xmlns: PUBSUB },
      xml('publish', { node }, xml('item', { id }, payload)),
      ...(Object.keys(options).length ? [xml('publish-options', {}, xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
        xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, 'http://jabber.org/protocol/pubsub#publish-options')),
        ...Object.entries(options).map(([k, v]) => xml('field', { var: k }, xml('value', {}, v)))))] : [])));
    const privateNode = { 'pubsub#persist_items': 'true', 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max' };
    await publish(BOOKMARKS, 'lab@conference.localhost', xml('conference', { xmlns: BOOKMARKS, name: 'Lab', autojoin: 'true' }, xml('nick', {}, 'al')), privateNode);
    await publish(BOOKMARKS, 'ops@conference.localhost', xml('conference', { xmlns: BOOKMARKS, name: 'Ops', autojoin: 'false' }), privateNode);
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');
    const id = createHash('sha1').update(png).digest('hex');
    await publish('urn:xmpp:avatar:data', id, xml('data', { xmlns: 'urn:xmpp:avatar:data' }, png.toString('base64')));
    await publish('urn:xmpp:avatar:metadata', id, xml('metadata', { xmlns: 'urn:xmpp:avatar:metadata' }, xml('info', { id, bytes: String(png.length), type: 'image/png' })));

    const dir = await migratedDir();
    const file = path.join(dir, 'perch.xml');
    const out = JSON.parse(expectOk(await perch(['export', file, '--format', 'xep0227', '--json'], { dataDir: a.dataDir })).stdout).output;
    expect(out).to.include({ users: 2 });
    expect(out.pepNodes).to.be.at.least(3);

    const b = await startServer();
    servers.push(b);
    expectOk(await perch(['import', file], { dataDir: b.dataDir }));
    // The password works on B (SCRAM-SHA-256 keys travelled too), and so do her PEP nodes.
    expect(await scramLogin(b.ports.c2s, 'alice', 'alice-pw', 'SHA-256')).to.equal('success');
    const aliceB = await login(b.ports.c2s, 'alice', 'alice-pw');
    clients.push(aliceB);
    const items = async (c: LoggedIn, node: string): Promise<XmppElement[]> => {
      const r = await iq(c, 'get', xml('pubsub', { xmlns: PUBSUB }, xml('items', { node })), 'alice@localhost');
      return r.getChild('pubsub', PUBSUB)!.getChild('items')!.getChildren('item');
    };
    const bookmarks = await items(aliceB, BOOKMARKS);
    expect(bookmarks.map((i) => i.attrs.id)).to.deep.equal(['lab@conference.localhost', 'ops@conference.localhost']);
    expect(bookmarks[0]!.getChild('conference', BOOKMARKS)!.attrs.autojoin).to.equal('true');
    expect(bookmarks[0]!.getChild('conference', BOOKMARKS)!.getChildText('nick')).to.equal('al');
    const [data] = await items(aliceB, 'urn:xmpp:avatar:data');
    expect(data!.attrs.id).to.equal(id);
    expect(Buffer.from(data!.getChildText('data', 'urn:xmpp:avatar:data')!, 'base64').equals(png)).to.equal(true);
    const [meta] = await items(aliceB, 'urn:xmpp:avatar:metadata');
    expect(meta!.getChild('metadata', 'urn:xmpp:avatar:metadata')!.getChild('info')!.attrs.id).to.equal(id);
    const bob = await login(b.ports.c2s, 'bob', 'bob-pw');
    clients.push(bob);
    expect(await iqError(bob, 'get', xml('pubsub', { xmlns: PUBSUB }, xml('items', { node: BOOKMARKS })), 'alice@localhost')).to.equal('not-allowed');
  });
});
