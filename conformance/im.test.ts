// Instant messaging and the feature modules, end to end with a real client library (@xmpp/client)
// and, where the wire matters (registration, stream management), raw sockets.
import { expect } from 'chai';
import {
  AccountPool, iq, iqError, startServer, login, rawLogin, connectRaw, openSecureStream, openStream, randomName, sleep, xml,
  type RunningServer, type LoggedIn, type XmppElement,
} from './harness.js';

const NS = {
  roster: 'jabber:iq:roster',
  delay: 'urn:xmpp:delay',
  vcard: 'vcard-temp',
  private: 'jabber:iq:private',
  blocking: 'urn:xmpp:blocking',
  carbons: 'urn:xmpp:carbons:2',
  forward: 'urn:xmpp:forward:0',
  ping: 'urn:xmpp:ping',
  version: 'jabber:iq:version',
  discoInfo: 'http://jabber.org/protocol/disco#info',
  register: 'jabber:iq:register',
  commands: 'http://jabber.org/protocol/commands',
  data: 'jabber:x:data',
  sm: 'urn:xmpp:sm:3',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
};

const isMessage = (id: string) => (el: XmppElement) => el.is('message') && el.attrs.id === id;

describe('conformance: IM and features', function () {
  this.timeout(30000);
  let server: RunningServer;
  const ADMIN = randomName('admin');
  const accounts = new AccountPool('im', 32);
  const clients = accounts.clients;

  before(async function () {
    this.timeout(60000);
    server = await startServer({
      users: accounts.users([ADMIN]),
      admins: [`${ADMIN}@localhost`],
      registration: true,
    });
  });
  afterEach(() => accounts.stopClients());
  after(async () => {
    await server?.stop();
  });

  const freshUser = () => accounts.fresh();

  const connect = (user: string, resource?: string): Promise<LoggedIn> => accounts.connect(server.ports.c2s, user, resource);

  const bare = (c: LoggedIn) => c.jid.split('/')[0]!;

  /** RFC 6121 §3: a mutual subscription, ending with both available and seeing each other. */
  async function befriend(a: LoggedIn, b: LoggedIn): Promise<void> {
    // Roster first: subscription approvals go to interested resources only (RFC 6121 §3.1.6).
    await iq(a, 'get', xml('query', { xmlns: NS.roster }));
    await iq(b, 'get', xml('query', { xmlns: NS.roster }));
    await a.xmpp.send(xml('presence'));
    await b.xmpp.send(xml('presence'));
    await a.xmpp.send(xml('presence', { to: bare(b), type: 'subscribe' }));
    const req = await b.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribe');
    expect(req.attrs.from).to.equal(bare(a));
    await b.xmpp.send(xml('presence', { to: bare(a), type: 'subscribed' }));
    await a.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribed' && el.attrs.from === bare(b));
    await a.waitFor((el) => el.is('presence') && el.attrs.from === b.jid && el.attrs.type === undefined);
    await b.xmpp.send(xml('presence', { to: bare(a), type: 'subscribe' }));
    await a.waitFor((el) => el.is('presence') && el.attrs.type === 'subscribe');
    await a.xmpp.send(xml('presence', { to: bare(b), type: 'subscribed' }));
    await b.waitFor((el) => el.is('presence') && el.attrs.from === a.jid && el.attrs.type === undefined);
  }


  describe('roster, presence and chat (RFC 6121)', () => {
    it('subscribes both ways, shares presence and puts both in each other\'s roster with subscription both', async () => {
      const a = await connect(freshUser());
      const b = await connect(freshUser());
      await befriend(a, b);
      const roster = await iq(a, 'get', xml('query', { xmlns: NS.roster }));
      const item = roster.getChild('query', NS.roster)!.getChildren('item').find((i) => i.attrs.jid === bare(b));
      expect(item?.attrs.subscription).to.equal('both');
    });

    it('chats both ways, preserving order', async () => {
      const a = await connect(freshUser());
      const b = await connect(freshUser());
      await befriend(a, b);
      for (let i = 0; i < 30; i++) await a.xmpp.send(xml('message', { to: bare(b), type: 'chat', id: `o${i}` }, xml('body', {}, `m${i}`)));
      await b.waitFor(isMessage('o29'));
      const bodies = b.received.filter((el) => el.is('message') && el.attrs.id?.startsWith('o')).map((el) => el.getChildText('body'));
      expect(bodies).to.deep.equal(Array.from({ length: 30 }, (_, i) => `m${i}`));
      await b.xmpp.send(xml('message', { to: a.jid, type: 'chat', id: 'back' }, xml('body', {}, 'reply')));
      const back = await a.waitFor(isMessage('back'));
      expect(back.attrs.from).to.equal(b.jid);
    });

    it('sends the contact\'s current presence on approval with a <delay/> of when it was sent (RFC 6121 §3.1.5)', async () => {
      const a = await connect(freshUser());
      const b = await connect(freshUser());
      await befriend(a, b);
      const p = a.received.find((el) => el.is('presence') && el.attrs.from === b.jid && el.attrs.type === undefined)!;
      const delay = p.getChild('delay', NS.delay);
      expect(delay, 'urn:xmpp:delay').to.not.equal(undefined);
      expect(delay!.attrs.from).to.equal('localhost');
      expect(Date.parse(delay!.attrs.stamp!)).to.be.closeTo(Date.now(), 60000);
    });

    it('broadcasts unavailable presence when a contact leaves', async () => {
      const a = await connect(freshUser());
      const b = await connect(freshUser());
      await befriend(a, b);
      const bJid = b.jid;
      await b.stop();
      await a.waitFor((el) => el.is('presence') && el.attrs.from === bJid && el.attrs.type === 'unavailable');
    });

    it('versions the roster (RFC 6121 §2.6): an unchanged version gets an empty result', async () => {
      const a = await connect(freshUser());
      const first = await iq(a, 'get', xml('query', { xmlns: NS.roster, ver: '' }));
      const ver = first.getChild('query', NS.roster)?.attrs.ver;
      expect(ver, 'the roster carries a version').to.be.a('string');
      await iq(a, 'set', xml('query', { xmlns: NS.roster }, xml('item', { jid: 'friend@example.org', name: 'Friend' })));
      const push = await a.waitFor((el) => el.is('iq') && el.attrs.type === 'set' && !!el.getChild('query', NS.roster));
      const pushVer = push.getChild('query', NS.roster)!.attrs.ver;
      expect(pushVer).to.be.a('string').and.not.equal(ver);
      const same = await iq(a, 'get', xml('query', { xmlns: NS.roster, ver: pushVer }));
      expect(same.getChild('query', NS.roster), 'no roster for an up-to-date version').to.equal(undefined);
      const older = await iq(a, 'get', xml('query', { xmlns: NS.roster, ver }));
      const q = older.getChild('query', NS.roster);
      if (q) expect(q.getChildren('item').map((i) => i.attrs.jid)).to.include('friend@example.org');
      else await a.waitFor((el) => el.is('iq') && el.attrs.type === 'set' && el.getChild('query', NS.roster)?.getChild('item')?.attrs.jid === 'friend@example.org');
    });
  });

  describe('offline messages', () => {
    it('stores a message for an offline user and delivers it at the next login with a delay stamp', async () => {
      const a = await connect(freshUser());
      const offlineUser = freshUser();
      await a.xmpp.send(xml('message', { to: `${offlineUser}@localhost`, type: 'chat', id: 'off1' }, xml('body', {}, 'while you were away')));
      await sleep(300);
      const b = await connect(offlineUser);
      await b.xmpp.send(xml('presence'));
      const m = await b.waitFor(isMessage('off1'));
      expect(m.getChildText('body')).to.equal('while you were away');
      expect(m.attrs.from).to.equal(a.jid);
      const delay = m.getChild('delay', NS.delay);
      expect(delay, 'urn:xmpp:delay').to.not.equal(undefined);
      expect(delay!.attrs.from).to.equal('localhost');
      expect(Date.parse(delay!.attrs.stamp!)).to.be.closeTo(Date.now(), 60000);
      await b.expectNone(isMessage('off1'), 300);
    });
  });

  describe('stored data', () => {
    it('stores and returns a vCard (XEP-0054), readable by others', async () => {
      const a = await connect(freshUser());
      const b = await connect(freshUser());
      await iq(a, 'set', xml('vCard', { xmlns: NS.vcard }, xml('FN', {}, 'Alice Example'), xml('NICKNAME', {}, 'ally')));
      const own = await iq(a, 'get', xml('vCard', { xmlns: NS.vcard }));
      expect(own.getChild('vCard', NS.vcard)!.getChildText('FN')).to.equal('Alice Example');
      const other = await iq(b, 'get', xml('vCard', { xmlns: NS.vcard }), bare(a));
      expect(other.getChild('vCard', NS.vcard)!.getChildText('NICKNAME')).to.equal('ally');
    });

    it('stores and returns private XML (XEP-0049), refusing jabber: namespaces', async () => {
      const a = await connect(freshUser());
      await iq(a, 'set', xml('query', { xmlns: NS.private }, xml('prefs', { xmlns: 'urn:example:prefs' }, xml('colour', {}, 'green'))));
      const r = await iq(a, 'get', xml('query', { xmlns: NS.private }, xml('prefs', { xmlns: 'urn:example:prefs' })));
      const prefs = r.getChild('query', NS.private)!.getChild('prefs', 'urn:example:prefs')!;
      expect(prefs.getChildText('colour')).to.equal('green');
      expect(await iqError(a, 'get', xml('query', { xmlns: NS.private }, xml('x', { xmlns: 'jabber:client' })))).to.equal('not-acceptable');
    });
  });

  describe('blocking (XEP-0191)', () => {
    it('blocks a contact: their messages bounce with service-unavailable and the list shows them', async () => {
      const a = await connect(freshUser());
      const b = await connect(freshUser());
      await a.xmpp.send(xml('presence'));
      await iq(a, 'set', xml('block', { xmlns: NS.blocking }, xml('item', { jid: bare(b) })));
      const list = await iq(a, 'get', xml('blocklist', { xmlns: NS.blocking }));
      expect(list.getChild('blocklist', NS.blocking)!.getChildren('item').map((i) => i.attrs.jid)).to.deep.equal([bare(b)]);
      await b.xmpp.send(xml('message', { to: bare(a), type: 'chat', id: 'blk' }, xml('body', {}, 'let me in')));
      const err = await b.waitFor((el) => el.is('message') && el.attrs.type === 'error' && el.attrs.id === 'blk');
      expect(err.getChild('error')!.getChild('service-unavailable', NS.stanzas)).to.not.equal(undefined);
      await a.expectNone(isMessage('blk'), 300);
      await iq(a, 'set', xml('unblock', { xmlns: NS.blocking }));
      await b.xmpp.send(xml('message', { to: a.jid, type: 'chat', id: 'unblk' }, xml('body', {}, 'now?')));
      await a.waitFor(isMessage('unblk'));
    });
    it('sends the user\'s current presence to an unblocked contact, stamped when it was sent (XEP-0191 §3.4)', async () => {
      const a = await connect(freshUser());
      const b = await connect(freshUser());
      await befriend(a, b);
      await iq(a, 'set', xml('block', { xmlns: NS.blocking }, xml('item', { jid: bare(b) })));
      await b.waitFor((el) => el.is('presence') && el.attrs.from === a.jid && el.attrs.type === 'unavailable');
      await new Promise((r) => setTimeout(r, 2500));
      const unblockedAt = Date.now();
      await iq(a, 'set', xml('unblock', { xmlns: NS.blocking }, xml('item', { jid: bare(b) })));
      const p = await b.waitFor((el) => el.is('presence') && el.attrs.from === a.jid && el.attrs.type === undefined
        && b.received.indexOf(el) > b.received.findIndex((u) => u.attrs.type === 'unavailable' && u.attrs.from === a.jid));
      const delay = p.getChild('delay', NS.delay);
      expect(delay, 'urn:xmpp:delay').to.not.equal(undefined);
      expect(delay!.attrs.from).to.equal('localhost');
      expect(Date.parse(delay!.attrs.stamp!), 'the time the presence was sent, not the unblock').to.be.below(unblockedAt - 1500);
    });

    it('sends the blocker an error whose <text/> inherits the stream\'s language', async () => {
      const a = await connect(freshUser());
      const b = await connect(freshUser());
      await iq(a, 'set', xml('block', { xmlns: NS.blocking }, xml('item', { jid: bare(b) })));
      await a.xmpp.send(xml('message', { to: bare(b), type: 'chat', id: 'blkd' }, xml('body', {}, 'hello?')));
      const err = await a.waitFor((el) => el.is('message') && el.attrs.type === 'error' && el.attrs.id === 'blkd');
      const text = err.getChild('error')!.getChild('text', NS.stanzas);
      expect(text?.text()).to.equal('You have blocked this JID');
      expect(text!.attrs['xml:lang']).to.equal(undefined);
    });
  });

  describe('message carbons (XEP-0280)', () => {
    it('copies messages received by and sent from other resources', async () => {
      const user = freshUser();
      const r1 = await connect(user, 'r1');
      const r2 = await connect(user, 'r2');
      const b = await connect(freshUser());
      await r1.xmpp.send(xml('presence'));
      await r2.xmpp.send(xml('presence'));
      await iq(r1, 'set', xml('enable', { xmlns: NS.carbons }));
      await b.xmpp.send(xml('message', { to: r2.jid, type: 'chat', id: 'cc1' }, xml('body', {}, 'to r2')));
      await r2.waitFor(isMessage('cc1'));
      const received = await r1.waitFor((el) => el.is('message') && !!el.getChild('received', NS.carbons));
      expect(received.attrs.from).to.equal(bare(r1));
      const inner = received.getChild('received', NS.carbons)!.getChild('forwarded', NS.forward)!.getChild('message')!;
      expect(inner.attrs.id).to.equal('cc1');
      await r2.xmpp.send(xml('message', { to: bare(b), type: 'chat', id: 'cc2' }, xml('body', {}, 'from r2')));
      const sent = await r1.waitFor((el) => el.is('message') && !!el.getChild('sent', NS.carbons));
      expect(sent.getChild('sent', NS.carbons)!.getChild('forwarded', NS.forward)!.getChild('message')!.attrs.id).to.equal('cc2');
    });
  });

  describe('service queries', () => {
    it('answers ping (XEP-0199) on the server and on an account', async () => {
      const a = await connect(freshUser());
      const r = await iq(a, 'get', xml('ping', { xmlns: NS.ping }), 'localhost');
      expect(r.attrs.type).to.equal('result');
      await iq(a, 'get', xml('ping', { xmlns: NS.ping }));
    });

    it('answers software version (XEP-0092)', async () => {
      const a = await connect(freshUser());
      const r = await iq(a, 'get', xml('query', { xmlns: NS.version }), 'localhost');
      const q = r.getChild('query', NS.version)!;
      expect(q.getChildText('name')).to.be.a('string').and.not.equal('');
      expect(q.getChildText('version')).to.be.a('string').and.not.equal('');
    });

    it('describes the server in disco#info (XEP-0030)', async () => {
      const a = await connect(freshUser());
      const r = await iq(a, 'get', xml('query', { xmlns: NS.discoInfo }), 'localhost');
      const q = r.getChild('query', NS.discoInfo)!;
      const identity = q.getChildren('identity').find((i) => i.attrs.category === 'server');
      expect(identity?.attrs.type).to.equal('im');
      const features = q.getChildren('feature').map((f) => f.attrs.var);
      expect(features).to.include.members([NS.discoInfo, NS.ping, NS.version, NS.blocking, NS.carbons, NS.vcard]);
      const account = await iq(a, 'get', xml('query', { xmlns: NS.discoInfo }), bare(a));
      expect(account.getChild('query', NS.discoInfo)!.getChildren('identity').map((i) => i.attrs.category)).to.include('account');
    });
  });

  describe('accounts', () => {
    it('registers an account in-band (XEP-0077) when registration is enabled', async () => {
      const name = randomName('ibr');
      const raw = await connectRaw(server.ports.c2s);
      const features = await openSecureStream(raw);
      expect(features).to.include(`<register xmlns='http://jabber.org/features/iq-register'`);
      raw.send(`<iq type='get' id='reg1'><query xmlns='${NS.register}'/></iq>`);
      const form = await raw.waitFor(/<iq[^>]*id=['"]reg1['"][\s\S]*?<\/iq>/);
      expect(form).to.include('<username');
      expect(form).to.include('<password');
      raw.send(`<iq type='set' id='reg2'><query xmlns='${NS.register}'><username>${name}</username><password>newpw</password></query></iq>`);
      const done = await raw.waitFor(/<iq[^>]*id=['"]reg2['"][^>]*(\/>|>[\s\S]*?<\/iq>)/);
      expect(done).to.match(/type=['"]result['"]/);
      raw.close();
      const c = await login(server.ports.c2s, name, 'newpw');
      clients.push(c);
    });

    it('adds a user with the XEP-0133 add-user command as an admin, and refuses it to others', async () => {
      const admin = await connect(ADMIN);
      const node = 'http://jabber.org/protocol/admin#add-user';
      const step1 = await iq(admin, 'set', xml('command', { xmlns: NS.commands, node, action: 'execute' }), 'localhost');
      const cmd = step1.getChild('command', NS.commands)!;
      expect(cmd.attrs.status).to.equal('executing');
      const sessionid = cmd.attrs.sessionid!;
      const name = randomName('added');
      const field = (v: string, value: string) => xml('field', { var: v }, xml('value', {}, value));
      const step2 = await iq(admin, 'set', xml('command', { xmlns: NS.commands, node, sessionid },
        xml('x', { xmlns: NS.data, type: 'submit' },
          field('FORM_TYPE', 'http://jabber.org/protocol/admin'),
          field('accountjid', `${name}@localhost`), field('password', 'addedpw'), field('password-verify', 'addedpw'))), 'localhost');
      expect(step2.getChild('command', NS.commands)!.attrs.status).to.equal('completed');
      const c = await login(server.ports.c2s, name, 'addedpw');
      clients.push(c);
      const user = await connect(freshUser());
      expect(await iqError(user, 'set', xml('command', { xmlns: NS.commands, node, action: 'execute' }), 'localhost')).to.equal('forbidden');
    });
  });

  describe('stream management (XEP-0198)', () => {
    it('acks, and resumes after a dropped connection without losing or duplicating a message', async () => {
      const user = freshUser();
      const sender = await connect(freshUser());
      const s = await rawLogin(server.ports.c2s, user, 'pw', 'sm');
      s.send(`<enable xmlns='${NS.sm}' resume='true'/>`);
      const enabled = await s.waitFor(/<enabled[^>]*>/);
      expect(enabled).to.match(/resume=['"](true|1)['"]/);
      const previd = /id=['"]([^'"]+)['"]/.exec(enabled)![1]!;
      // The server counts what it handled.
      s.send(`<iq type='get' id='p1'><ping xmlns='${NS.ping}'/></iq><r xmlns='${NS.sm}'/>`);
      expect(await s.waitFor(/<a xmlns=['"]urn:xmpp:sm:3['"] h=['"]\d+['"]\/>/)).to.include(`h='1'`);
      const send = (id: string) => sender.xmpp.send(xml('message', { to: s.jid, type: 'chat', id }, xml('body', {}, id)));
      await send('sm1');
      await s.waitFor(/<message[^>]*id=['"]sm1['"][\s\S]*?<\/message>/);
      // Stanzas to us so far: the ping result and sm1. Acknowledge both, then receive sm2 without acking.
      s.send(`<a xmlns='${NS.sm}' h='2'/>`);
      await send('sm2');
      await s.waitFor(/<message[^>]*id=['"]sm2['"][\s\S]*?<\/message>/);
      s.close();
      await s.closed;
      await sleep(200);
      await send('sm3');
      await sleep(200);
      const raw = await connectRaw(server.ports.c2s);
      await openSecureStream(raw);
      raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0pw`).toString('base64')}</auth>`);
      await raw.waitFor(/<success[^>]*(\/>|>[\s\S]*?<\/success>)/);
      const features = await openStream(raw);
      expect(features).to.include(`<sm xmlns='${NS.sm}'`);
      raw.send(`<resume xmlns='${NS.sm}' previd='${previd}' h='2'/>`);
      const resumed = await raw.waitFor(/<resumed[^>]*>/);
      expect(resumed).to.include(`previd='${previd}'`);
      expect(resumed).to.match(/h=['"]1['"]/);
      await raw.waitFor(/<message[^>]*id=['"]sm3['"][\s\S]*?<\/message>/);
      await sleep(300);
      const all = raw.text;
      expect(all.match(/id=['"]sm1['"]/g) ?? [], 'acknowledged message not resent').to.have.length(0);
      expect(all.match(/id=['"]sm2['"]/g) ?? [], 'unacknowledged message resent once').to.have.length(1);
      expect(all.match(/id=['"]sm3['"]/g) ?? [], 'message sent while away delivered once').to.have.length(1);
      // The resumed stream is the same session.
      raw.send(`<iq type='get' id='p2'><ping xmlns='${NS.ping}'/></iq>`);
      await raw.waitFor(/<iq[^>]*id=['"]p2['"]/);
      raw.send('</stream:stream>');
      await raw.closed;
    });

    it('fails resumption of an unknown stream with item-not-found, and binding still works', async () => {
      const user = freshUser();
      const raw = await connectRaw(server.ports.c2s);
      await openSecureStream(raw);
      raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0pw`).toString('base64')}</auth>`);
      await raw.waitFor(/<success[^>]*(\/>|>[\s\S]*?<\/success>)/);
      await openStream(raw);
      raw.send(`<resume xmlns='${NS.sm}' previd='nonexistent' h='0'/>`);
      expect(await raw.waitFor(/<failed[\s\S]*?(<\/failed>|\/>)/)).to.include('item-not-found');
      raw.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`);
      await raw.waitFor(/<jid>/);
      raw.close();
    });
  });
});
