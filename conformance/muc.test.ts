// Multi-user chat (XEP-0045) with archived rooms (XEP-0313 on the room, XEP-0359 stanza ids,
// XEP-0421 occupant ids, XEP-0425 moderation, XEP-0410 self-ping), end to end: a real server
// process, real sockets, @xmpp/client. Every test uses fresh accounts and its own rooms.
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  AccountPool, iq, iqError, startServer, randomName, sleep, xml,
  type RunningServer, type LoggedIn, type XmppElement,
} from './harness.js';

const NS = {
  muc: 'http://jabber.org/protocol/muc',
  user: 'http://jabber.org/protocol/muc#user',
  admin: 'http://jabber.org/protocol/muc#admin',
  owner: 'http://jabber.org/protocol/muc#owner',
  roomconfig: 'http://jabber.org/protocol/muc#roomconfig',
  roominfo: 'http://jabber.org/protocol/muc#roominfo',
  request: 'http://jabber.org/protocol/muc#request',
  register: 'jabber:iq:register',
  registerForm: 'http://jabber.org/protocol/muc#register',
  conference: 'jabber:x:conference',
  data: 'jabber:x:data',
  discoInfo: 'http://jabber.org/protocol/disco#info',
  discoItems: 'http://jabber.org/protocol/disco#items',
  rsm: 'http://jabber.org/protocol/rsm',
  mam: 'urn:xmpp:mam:2',
  fulltext: 'urn:xmpp:fulltext:0',
  forward: 'urn:xmpp:forward:0',
  delay: 'urn:xmpp:delay',
  sid: 'urn:xmpp:sid:0',
  occupantId: 'urn:xmpp:occupant-id:0',
  moderate: 'urn:xmpp:message-moderate:1',
  retract: 'urn:xmpp:message-retract:1',
  ping: 'urn:xmpp:ping',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
};

const SERVICE = 'conference.localhost';
/** A second service, used only by the room-listing test, so that other tests' rooms do not show up. */
const LISTING_SERVICE = 'rooms.localhost';

type Fields = Record<string, string | string[]>;

// --- stanza inspection ------------------------------------------------------------------------

const mucX = (el: XmppElement) => el.getChild('x', NS.user);
const statusCodes = (el: XmppElement) => (mucX(el)?.getChildren('status') ?? []).map((s) => Number(s.attrs.code)).sort((a, b) => a - b);
const itemOf = (el: XmppElement) => mucX(el)?.getChild('item');
const occupantIdOf = (el: XmppElement) => el.getChild('occupant-id', NS.occupantId)?.attrs.id;
const stanzaIdOf = (el: XmppElement, by: string) => el.getChildren('stanza-id', NS.sid).find((s) => s.attrs.by === by)?.attrs.id;

function errorCondition(el: XmppElement): string | undefined {
  const error = el.getChild('error');
  return error?.getChildElements().find((c) => c.attrs.xmlns === NS.stanzas && c.name !== 'text')?.name;
}

const isPresenceFrom = (from: string, type?: string) => (el: XmppElement) =>
  el.is('presence') && el.attrs.from === from && el.attrs.type === type;
const isSelfPresence = (from: string, type?: string) => (el: XmppElement) =>
  isPresenceFrom(from, type)(el) && statusCodes(el).includes(110);
const isGroupchat = (room: string, body: string) => (el: XmppElement) =>
  el.is('message') && el.attrs.type === 'groupchat' && el.attrs.from?.startsWith(`${room}/`) === true && el.getChildText('body') === body;
const isErrorReply = (name: string, id: string) => (el: XmppElement) => el.is(name) && el.attrs.type === 'error' && el.attrs.id === id;

function form(type: string, formType: string | null, fields: Fields): XmppElement {
  return xml('x', { xmlns: NS.data, type },
    formType === null ? null : xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, formType)),
    ...Object.entries(fields).map(([name, v]) =>
      xml('field', { var: name }, ...(Array.isArray(v) ? v : [v]).map((value) => xml('value', {}, value)))));
}

/** A data form's fields: var → values. */
function formFields(x: XmppElement | undefined): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of x?.getChildren('field') ?? []) out.set(f.attrs.var ?? '', f.getChildren('value').map((v) => v.text()));
  return out;
}

interface MamPage {
  /** The archived messages, in the order received. */
  messages: XmppElement[];
  ids: string[];
  bodies: string[];
  stamps: string[];
  first?: string;
  last?: string;
  count?: number;
  complete: boolean;
}

describe('conformance: multi-user chat (XEP-0045) and room archives', function () {
  this.timeout(30000);
  let server: RunningServer;
  const accounts = new AccountPool('muc', 130);
  let counter = 0;

  before(async function () {
    this.timeout(60000);
    server = await startServer({
      users: accounts.users(),
      configYaml: `muc:\n  services:\n    - domain: ${SERVICE}\n    - domain: ${LISTING_SERVICE}\n      name: Listed rooms\n`,
    });
  });
  afterEach(() => accounts.stopClients());
  after(async () => {
    await server?.stop();
  });

  const freshUser = () => accounts.fresh();

  const connect = (user = freshUser(), resource?: string, port = server.ports.c2s): Promise<LoggedIn> => accounts.connect(port, user, resource);

  /** Connected and available, so that messages to the bare JID (invitations) reach it. */
  async function online(user = freshUser()): Promise<LoggedIn> {
    const c = await connect(user);
    await c.xmpp.send(xml('presence'));
    await c.waitFor((el) => el.is('presence') && el.attrs.from === c.jid);
    return c;
  }

  const bare = (c: LoggedIn) => c.jid.split('/')[0]!;
  const newRoom = (service = SERVICE) => `${randomName('room')}@${service}`;


  // --- entering and leaving -----------------------------------------------------------------------

  interface JoinOptions { password?: string; history?: Record<string, string>; plain?: boolean }

  /** Sends a join presence; resolves with the self-presence or the presence error. */
  async function enter(c: LoggedIn, room: string, nick: string, opts: JoinOptions = {}): Promise<XmppElement> {
    const x = opts.plain ? null : xml('x', { xmlns: NS.muc },
      opts.password !== undefined ? xml('password', {}, opts.password) : null,
      opts.history ? xml('history', opts.history) : null);
    await c.xmpp.send(xml('presence', { to: `${room}/${nick}` }, x));
    return c.waitFor((el) => el.is('presence') && el.attrs.from?.startsWith(`${room}/`) === true
      && (el.attrs.type === 'error' || statusCodes(el).includes(110)));
  }

  /** Joins and waits for the subject, which ends the join sequence (§7.2.15). */
  async function join(c: LoggedIn, room: string, nick: string, opts: JoinOptions = {}): Promise<XmppElement> {
    const self = await enter(c, room, nick, opts);
    if (self.attrs.type === 'error') throw new Error(`join of ${room}/${nick} failed: ${String(self)}`);
    await c.waitFor((el) => el.is('message') && el.attrs.from?.split('/')[0] === room && !!el.getChild('subject') && !el.getChild('body'));
    return self;
  }

  async function joinError(c: LoggedIn, room: string, nick: string, opts: JoinOptions = {}): Promise<string> {
    const p = await enter(c, room, nick, opts);
    expect(p.attrs.type, `expected a presence error, got ${String(p)}`).to.equal('error');
    expect(p.getChild('error')?.attrs.by, 'the room says it generated the error').to.equal(room);
    return errorCondition(p) ?? String(p);
  }

  async function leave(c: LoggedIn, room: string, nick: string): Promise<XmppElement> {
    await c.xmpp.send(xml('presence', { to: `${room}/${nick}`, type: 'unavailable' }));
    return c.waitFor(isSelfPresence(`${room}/${nick}`, 'unavailable'));
  }

  async function configure(c: LoggedIn, room: string, fields: Fields): Promise<XmppElement> {
    return iq(c, 'set', xml('query', { xmlns: NS.owner }, form('submit', NS.roomconfig, fields)), room);
  }

  /** Creates a room (owner joined as `nick`) and submits its configuration. */
  async function createRoom(owner: LoggedIn, nick: string, fields: Fields = {}, service = SERVICE): Promise<string> {
    const room = newRoom(service);
    const self = await join(owner, room, nick);
    expect(statusCodes(self)).to.include(201);
    await configure(owner, room, fields);
    return room;
  }

  async function say(c: LoggedIn, room: string, body: string, extra: XmppElement[] = []): Promise<string> {
    const id = `m${++counter}`;
    await c.xmpp.send(xml('message', { to: room, type: 'groupchat', id }, xml('body', {}, body), ...extra));
    return id;
  }

  /** c says body; every listener receives it; returns what the first listener got. */
  async function sayAndHear(c: LoggedIn, room: string, body: string, listeners: LoggedIn[]): Promise<XmppElement> {
    await say(c, room, body);
    const got = await Promise.all(listeners.map((l) => l.waitFor(isGroupchat(room, body))));
    return got[0]!;
  }

  async function admin(c: LoggedIn, room: string, items: Record<string, string>[], reason?: string): Promise<XmppElement> {
    return iq(c, 'set', xml('query', { xmlns: NS.admin },
      ...items.map((a) => xml('item', a, reason !== undefined ? xml('reason', {}, reason) : null))), room);
  }

  async function adminError(c: LoggedIn, room: string, items: Record<string, string>[]): Promise<string> {
    return iqError(c, 'set', xml('query', { xmlns: NS.admin }, ...items.map((a) => xml('item', a))), room);
  }

  async function list(c: LoggedIn, room: string, attrs: Record<string, string>): Promise<XmppElement[]> {
    const r = await iq(c, 'get', xml('query', { xmlns: NS.admin }, xml('item', attrs)), room);
    return r.getChild('query', NS.admin)!.getChildren('item');
  }

  async function discoInfo(c: LoggedIn, jid: string): Promise<XmppElement> {
    const r = await iq(c, 'get', xml('query', { xmlns: NS.discoInfo }), jid);
    return r.getChild('query', NS.discoInfo)!;
  }

  // --- archive queries -------------------------------------------------------------------------------

  function mamQuery(queryid: string, fields: Fields, rsm?: { max?: number; before?: string; after?: string }): XmppElement {
    return xml('query', { xmlns: NS.mam, queryid },
      Object.keys(fields).length > 0 ? form('submit', NS.mam, fields) : null,
      rsm ? xml('set', { xmlns: NS.rsm },
        rsm.max !== undefined ? xml('max', {}, String(rsm.max)) : null,
        rsm.after !== undefined ? xml('after', {}, rsm.after) : null,
        rsm.before !== undefined ? xml('before', {}, rsm.before) : null) : null);
  }

  async function mam(c: LoggedIn, room: string, fields: Fields = {}, rsm?: { max?: number; before?: string; after?: string }): Promise<MamPage> {
    const queryid = `q${++counter}`;
    const reply = await iq(c, 'set', mamQuery(queryid, fields, rsm), room);
    const fin = reply.getChild('fin', NS.mam);
    expect(fin, 'the IQ result carries <fin/>').to.not.equal(undefined);
    // The results arrive before the IQ result.
    const results = c.received.filter((el) => el.is('message') && el.getChild('result', NS.mam)?.attrs.queryid === queryid);
    for (const r of results) expect(r.attrs.from, 'results come from the room').to.equal(room);
    const forwarded = results.map((r) => r.getChild('result', NS.mam)!.getChild('forwarded', NS.forward)!);
    const messages = forwarded.map((f) => f.getChild('message')!);
    const set = fin!.getChild('set', NS.rsm);
    const count = set?.getChildText('count');
    return {
      messages,
      ids: results.map((r) => r.getChild('result', NS.mam)!.attrs.id!),
      bodies: messages.map((m) => m.getChildText('body') ?? ''),
      stamps: forwarded.map((f) => f.getChild('delay', NS.delay)!.attrs.stamp!),
      ...(set?.getChild('first') ? { first: set.getChildText('first')! } : {}),
      ...(set?.getChild('last') ? { last: set.getChildText('last')! } : {}),
      ...(count !== null && count !== undefined ? { count: Number(count) } : {}),
      complete: fin!.attrs.complete === 'true',
    };
  }

  async function mamError(c: LoggedIn, room: string, fields: Fields, rsm?: { max?: number; before?: string; after?: string }): Promise<string> {
    return iqError(c, 'set', mamQuery(`q${++counter}`, fields, rsm), room);
  }

  // ==================================================================================================

  describe('creating rooms (§10.1)', () => {
    it('creates an instant room: 201, locked with item-not-found for others until the owner submits the empty form', async () => {
      const owner = await connect();
      const other = await connect();
      const room = newRoom();
      const self = await join(owner, room, 'Owner');
      expect(statusCodes(self), 'created (201) and self (110), no 100 in a semi-anonymous room, no 170').to.deep.equal([110, 201]);
      expect(itemOf(self)!.attrs).to.include({ affiliation: 'owner', role: 'moderator', jid: owner.jid });
      expect(occupantIdOf(self)).to.be.a('string');

      expect(await joinError(other, room, 'Early')).to.equal('item-not-found');
      // §10.1.2: an instant room is accepted by submitting an empty form.
      const r = await iq(owner, 'set', xml('query', { xmlns: NS.owner }, xml('x', { xmlns: NS.data, type: 'submit' })), room);
      expect(r.attrs.type).to.equal('result');
      const otherSelf = await join(other, room, 'Other');
      expect(statusCodes(otherSelf)).to.deep.equal([110]);
      expect(itemOf(otherSelf)!.attrs).to.include({ affiliation: 'none', role: 'participant' });
      await owner.waitFor(isPresenceFrom(`${room}/Other`));
    });

    it('creates a reserved room: the owner gets the configuration form, submits it, and the room shows it', async () => {
      const owner = await connect();
      const room = newRoom();
      await join(owner, room, 'Owner');
      const r = await iq(owner, 'get', xml('query', { xmlns: NS.owner }), room);
      const x = r.getChild('query', NS.owner)!.getChild('x', NS.data)!;
      expect(x.attrs.type).to.equal('form');
      const fields = formFields(x);
      expect(fields.get('FORM_TYPE')).to.deep.equal([NS.roomconfig]);
      expect([...fields.keys()]).to.include.members([
        'muc#roomconfig_roomname', 'muc#roomconfig_roomdesc', 'muc#roomconfig_lang', 'muc#roomconfig_persistentroom',
        'muc#roomconfig_publicroom', 'muc#roomconfig_membersonly', 'muc#roomconfig_moderatedroom', 'muc#roomconfig_allowinvites',
        'muc#roomconfig_changesubject', 'muc#roomconfig_allowvoicerequests', 'muc#roomconfig_passwordprotectedroom',
        'muc#roomconfig_roomsecret', 'muc#roomconfig_maxusers', 'muc#roomconfig_whois', 'muc#roomconfig_allowpm',
        'muc#roomconfig_presencebroadcast', 'muc#maxhistoryfetch', 'muc#roomconfig_roomowners', 'muc#roomconfig_roomadmins',
      ]);
      expect(fields.get('muc#roomconfig_roomowners')).to.deep.equal([bare(owner)]);
      expect(fields.get('muc#maxhistoryfetch')).to.deep.equal(['30']);

      await configure(owner, room, {
        'muc#roomconfig_roomname': 'Balcony', 'muc#roomconfig_roomdesc': 'Where the talking happens',
        'muc#roomconfig_lang': 'en', 'muc#roomconfig_persistentroom': '1', 'muc#maxhistoryfetch': '12',
      });
      const again = formFields((await iq(owner, 'get', xml('query', { xmlns: NS.owner }), room)).getChild('query', NS.owner)!.getChild('x', NS.data));
      expect(again.get('muc#roomconfig_roomname')).to.deep.equal(['Balcony']);
      expect(again.get('muc#roomconfig_persistentroom')).to.deep.equal(['1']);
      expect(again.get('muc#maxhistoryfetch')).to.deep.equal(['12']);
      const info = await discoInfo(owner, room);
      expect(info.getChild('identity')!.attrs).to.include({ category: 'conference', type: 'text', name: 'Balcony' });
      expect(info.getChildren('feature').map((f) => f.attrs.var)).to.include('muc_persistent');

      const stranger = await connect();
      expect(await iqError(stranger, 'get', xml('query', { xmlns: NS.owner }), room), 'only owners see the form').to.equal('forbidden');
      expect(await iqError(stranger, 'set', xml('query', { xmlns: NS.owner }, form('submit', NS.roomconfig, {})), room)).to.equal('forbidden');
      // Clean up the persistent room.
      await iq(owner, 'set', xml('query', { xmlns: NS.owner }, xml('destroy')), room);
    });

    it('creates an unlocked room on a groupchat 1.0 join (presence without the MUC extension)', async () => {
      const owner = await connect();
      const other = await connect();
      const room = newRoom();
      const self = await join(owner, room, 'Old', { plain: true });
      expect(statusCodes(self)).to.include.members([110, 201]);
      expect(itemOf(self)!.attrs.affiliation).to.equal('owner');
      // No configuration step: others may enter at once.
      await join(other, room, 'Other', { plain: true });
      await owner.waitFor(isPresenceFrom(`${room}/Other`));
    });
  });

  describe('service discovery (§6)', () => {
    it('describes the service and lists it among the server\'s items', async () => {
      const c = await connect();
      const info = await discoInfo(c, SERVICE);
      expect(info.getChild('identity')!.attrs).to.include({ category: 'conference', type: 'text' });
      expect(info.getChildren('feature').map((f) => f.attrs.var)).to.include.members([NS.muc, NS.discoInfo, NS.discoItems]);
      const items = await iq(c, 'get', xml('query', { xmlns: NS.discoItems }), 'localhost');
      expect(items.getChild('query', NS.discoItems)!.getChildren('item').map((i) => i.attrs.jid)).to.include(SERVICE);
    });

    it('describes a room: features for its type and a muc#roominfo form with occupants, subject and description', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner', {
        'muc#roomconfig_roomname': 'Orchard', 'muc#roomconfig_roomdesc': 'Apples and pears',
      });
      await join(guest, room, 'Guest');
      await owner.xmpp.send(xml('message', { to: room, type: 'groupchat' }, xml('subject', {}, 'Harvest time')));
      await guest.waitFor((el) => el.is('message') && el.getChildText('subject') === 'Harvest time');
      const info = await discoInfo(guest, room);
      expect(info.getChild('identity')!.attrs).to.include({ category: 'conference', type: 'text', name: 'Orchard' });
      const features = info.getChildren('feature').map((f) => f.attrs.var);
      expect(features).to.include.members([NS.muc, NS.mam, NS.sid, NS.occupantId, NS.moderate,
        'muc_temporary', 'muc_public', 'muc_open', 'muc_unmoderated', 'muc_semianonymous', 'muc_unsecured']);
      const roominfo = formFields(info.getChildren('x', NS.data).find((x) => formFields(x).get('FORM_TYPE')?.[0] === NS.roominfo));
      expect(roominfo.get('muc#roominfo_occupants')).to.deep.equal(['2']);
      expect(roominfo.get('muc#roominfo_subject')).to.deep.equal(['Harvest time']);
      expect(roominfo.get('muc#roominfo_description')).to.deep.equal(['Apples and pears']);

      await configure(owner, room, {
        'muc#roomconfig_persistentroom': '1', 'muc#roomconfig_publicroom': '0', 'muc#roomconfig_membersonly': '1',
        'muc#roomconfig_moderatedroom': '1', 'muc#roomconfig_whois': 'anyone',
        'muc#roomconfig_passwordprotectedroom': '1', 'muc#roomconfig_roomsecret': 'pw',
      });
      const features2 = (await discoInfo(owner, room)).getChildren('feature').map((f) => f.attrs.var);
      expect(features2).to.include.members(['muc_persistent', 'muc_hidden', 'muc_membersonly', 'muc_moderated', 'muc_nonanonymous', 'muc_passwordprotected']);
      expect(features2).to.not.include.members(['muc_temporary', 'muc_public', 'muc_open']);
      await iq(owner, 'set', xml('query', { xmlns: NS.owner }, xml('destroy')), room);
    });

    it('lists public rooms only, paged with XEP-0059 (max, after, count)', async () => {
      const owner = await connect();
      const names: string[] = [];
      for (let i = 0; i < 5; i++) names.push(await createRoom(owner, 'Owner', { 'muc#roomconfig_roomname': `Listed ${i}` }, LISTING_SERVICE));
      const hidden = await createRoom(owner, 'Owner', { 'muc#roomconfig_publicroom': '0' }, LISTING_SERVICE);
      const locked = newRoom(LISTING_SERVICE);
      await join(owner, locked, 'Owner');

      const all = (await iq(owner, 'get', xml('query', { xmlns: NS.discoItems }), LISTING_SERVICE)).getChild('query', NS.discoItems)!;
      const jids = all.getChildren('item').map((i) => i.attrs.jid);
      expect([...jids].sort()).to.deep.equal([...names].sort());
      expect(all.getChildren('item').find((i) => i.attrs.jid === names[0])!.attrs.name).to.equal('Listed 0');
      expect(jids, 'a hidden room is not listed').to.not.include(hidden);
      expect(jids, 'a locked room is not listed').to.not.include(locked);

      const seen: string[] = [];
      let after: string | undefined;
      for (let page = 0; page < 5; page++) {
        const q = (await iq(owner, 'get', xml('query', { xmlns: NS.discoItems },
          xml('set', { xmlns: NS.rsm }, xml('max', {}, '2'), after !== undefined ? xml('after', {}, after) : null)), LISTING_SERVICE)).getChild('query', NS.discoItems)!;
        const items = q.getChildren('item').map((i) => i.attrs.jid!);
        const set = q.getChild('set', NS.rsm)!;
        expect(set.getChildText('count'), 'count is the size of the whole list').to.equal('5');
        if (items.length === 0) break;
        expect(items.length).to.be.at.most(2);
        expect(set.getChildText('first')).to.equal(items[0]);
        expect(set.getChildText('last')).to.equal(items[items.length - 1]);
        seen.push(...items);
        after = set.getChildText('last')!;
      }
      expect(seen).to.deep.equal(jids);
    });
  });

  describe('persistence', () => {
    it('keeps a persistent room, its configuration, affiliations, subject and history across a restart', async function () {
      this.timeout(90000);
      const dataDir = await mkdtemp(path.join(tmpdir(), 'perch-muc-persist-'));
      const users = { keeper: 'pw', friend: 'pw', deputy: 'pw' };
      let node: RunningServer | null = await startServer({ users, dataDir });
      const room = newRoom();
      // A server that has just started on a fresh data directory can be slow to open its first
      // streams on a loaded machine (the client gives up after 2 s): try the login again.
      const connectTo = async (user: string): Promise<LoggedIn> => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await connect(user, undefined, node!.ports.c2s);
          } catch (e) {
            if (attempt === 3 || (e as Error).name !== 'TimeoutError') throw e;
          }
        }
      };
      try {
        const owner = await connectTo('keeper');
        await join(owner, room, 'Keeper');
        await configure(owner, room, {
          'muc#roomconfig_persistentroom': '1', 'muc#roomconfig_roomname': 'Kept', 'muc#roomconfig_roomdesc': 'Survives restarts',
          'muc#maxhistoryfetch': '7',
        });
        await admin(owner, room, [{ jid: 'friend@localhost', affiliation: 'member' }, { jid: 'deputy@localhost', affiliation: 'admin' }]);
        await owner.xmpp.send(xml('message', { to: room, type: 'groupchat' }, xml('subject', {}, 'Before the restart')));
        await owner.waitFor((el) => el.is('message') && el.getChildText('subject') === 'Before the restart');
        const sent: string[] = [];
        for (let i = 0; i < 3; i++) sent.push(stanzaIdOf(await sayAndHear(owner, room, `kept ${i}`, [owner]), room)!);
        await owner.stop();
        await node.stop();
        node = await startServer({ users, dataDir, skipUserCreation: true });

        const friend = await connectTo('friend');
        const info = await discoInfo(friend, room);
        expect(info.getChild('identity')!.attrs.name).to.equal('Kept');
        expect(info.getChildren('feature').map((f) => f.attrs.var)).to.include('muc_persistent');
        const roominfo = formFields(info.getChild('x', NS.data));
        expect(roominfo.get('muc#roominfo_description')).to.deep.equal(['Survives restarts']);
        expect(roominfo.get('muc#roominfo_subject')).to.deep.equal(['Before the restart']);

        const self = await enter(friend, room, 'Friend');
        expect(itemOf(self)!.attrs.affiliation, 'the membership survived').to.equal('member');
        const subject = await friend.waitFor((el) => el.is('message') && !!el.getChild('subject') && !el.getChild('body'));
        expect(subject.getChildText('subject')).to.equal('Before the restart');
        const history = friend.received.filter((el) => el.is('message') && el.getChildText('body')?.startsWith('kept ') === true);
        expect(history.map((m) => m.getChildText('body'))).to.deep.equal(['kept 0', 'kept 1', 'kept 2']);
        expect(history.map((m) => stanzaIdOf(m, room))).to.deep.equal(sent);

        const keeper = await connectTo('keeper');
        const config = formFields((await iq(keeper, 'get', xml('query', { xmlns: NS.owner }), room)).getChild('query', NS.owner)!.getChild('x', NS.data));
        expect(config.get('muc#roomconfig_roomname')).to.deep.equal(['Kept']);
        expect(config.get('muc#roomconfig_persistentroom')).to.deep.equal(['1']);
        expect(config.get('muc#maxhistoryfetch')).to.deep.equal(['7']);
        expect((await list(keeper, room, { affiliation: 'admin' })).map((i) => i.attrs.jid)).to.deep.equal(['deputy@localhost']);
        expect((await list(keeper, room, { affiliation: 'member' })).map((i) => i.attrs.jid)).to.deep.equal(['friend@localhost']);
        expect((await list(keeper, room, { affiliation: 'owner' })).map((i) => i.attrs.jid)).to.deep.equal(['keeper@localhost']);
        expect((await mam(keeper, room)).ids.slice(-3)).to.deep.equal(sent);
        await accounts.stopClients();
      } finally {
        await node?.stop();
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  });

  describe('occupants (§7)', () => {
    it('announces joins and leaves: the occupant list, then self-presence with 110; real JIDs only to moderators', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner');
      const self = await join(guest, room, 'Guest');
      expect(statusCodes(self)).to.deep.equal([110]);
      expect(itemOf(self)!.attrs).to.include({ jid: guest.jid, role: 'participant', affiliation: 'none' });
      // §7.2.3: the occupant list first, without real JIDs for a participant in a semi-anonymous room.
      const ownerSeen = guest.received.find(isPresenceFrom(`${room}/Owner`))!;
      expect(guest.received.indexOf(ownerSeen)).to.be.below(guest.received.indexOf(self));
      expect(itemOf(ownerSeen)!.attrs).to.include({ affiliation: 'owner', role: 'moderator' });
      expect(itemOf(ownerSeen)!.attrs.jid).to.equal(undefined);
      // The moderator sees the newcomer's real JID.
      const seen = await owner.waitFor(isPresenceFrom(`${room}/Guest`));
      expect(itemOf(seen)!.attrs.jid).to.equal(guest.jid);
      expect(statusCodes(seen)).to.deep.equal([]);

      const gone = await leave(guest, room, 'Guest');
      expect(itemOf(gone)!.attrs.role).to.equal('none');
      await owner.waitFor(isPresenceFrom(`${room}/Guest`, 'unavailable'));
    });

    it('says 100 in a non-anonymous room, and everyone sees real JIDs', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner', { 'muc#roomconfig_whois': 'anyone' });
      const self = await join(guest, room, 'Guest');
      expect(statusCodes(self)).to.deep.equal([100, 110]);
      expect(itemOf(guest.received.find(isPresenceFrom(`${room}/Owner`))!)!.attrs.jid).to.equal(owner.jid);
    });

    it('says 210 when the room changed the requested nick', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner');
      // U+2126 OHM SIGN becomes U+03A9 under Unicode normalisation (RFC 7613 OpaqueString, NFC).
      const self = await join(guest, room, 'Guest\u2126');
      expect(statusCodes(self)).to.deep.equal([110, 210]);
      expect(self.attrs.from).to.equal(`${room}/Guest\u03A9`);
    });

    it('changes nick (303), and refuses a nick in use with conflict', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner');
      await join(guest, room, 'Guest');
      await guest.xmpp.send(xml('presence', { to: `${room}/Renamed` }));
      const oldSelf = await guest.waitFor(isSelfPresence(`${room}/Guest`, 'unavailable'));
      expect(statusCodes(oldSelf)).to.deep.equal([110, 303]);
      expect(itemOf(oldSelf)!.attrs.nick).to.equal('Renamed');
      const newSelf = await guest.waitFor(isSelfPresence(`${room}/Renamed`));
      expect(occupantIdOf(newSelf)).to.equal(occupantIdOf(oldSelf));
      const oldSeen = await owner.waitFor(isPresenceFrom(`${room}/Guest`, 'unavailable'));
      expect(statusCodes(oldSeen)).to.deep.equal([303]);
      expect(itemOf(oldSeen)!.attrs.nick).to.equal('Renamed');
      await owner.waitFor(isPresenceFrom(`${room}/Renamed`));

      await guest.xmpp.send(xml('presence', { to: `${room}/Owner` }));
      const err = await guest.waitFor((el) => el.is('presence') && el.attrs.type === 'error');
      expect(errorCondition(err)).to.equal('conflict');
      const third = await connect();
      expect(await joinError(third, room, 'Renamed')).to.equal('conflict');
      // The failed change left the occupant where it was.
      const still = await sayAndHear(guest, room, 'still here', [owner]);
      expect(still.attrs.from).to.equal(`${room}/Renamed`);
    });

    it('lets moderators change the subject, participants only when the room allows it', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner');
      await join(guest, room, 'Guest');
      await owner.xmpp.send(xml('message', { to: room, type: 'groupchat' }, xml('subject', {}, 'First topic')));
      const s = await guest.waitFor((el) => el.is('message') && el.getChildText('subject') === 'First topic');
      expect(s.attrs.from).to.equal(`${room}/Owner`);
      expect(stanzaIdOf(s, room), 'the subject change is archived').to.be.a('string');

      await guest.xmpp.send(xml('message', { to: room, type: 'groupchat', id: 'subj1' }, xml('subject', {}, 'Mine now')));
      expect(errorCondition(await guest.waitFor(isErrorReply('message', 'subj1')))).to.equal('forbidden');
      await configure(owner, room, { 'muc#roomconfig_changesubject': '1' });
      await guest.xmpp.send(xml('message', { to: room, type: 'groupchat', id: 'subj2' }, xml('subject', {}, 'Mine now')));
      await owner.waitFor((el) => el.is('message') && el.getChildText('subject') === 'Mine now' && el.attrs.from === `${room}/Guest`);

      // A newcomer gets the current subject, from whoever set it, after the history.
      const late = await connect();
      await enter(late, room, 'Late');
      const subject = await late.waitFor((el) => el.is('message') && !!el.getChild('subject') && !el.getChild('body'));
      expect(subject.getChildText('subject')).to.equal('Mine now');
      expect(subject.attrs.from).to.equal(`${room}/Guest`);
    });

    it('relays private messages through the room with <x xmlns=muc#user/>; unknown nick: item-not-found; non-occupant: not-acceptable', async () => {
      const owner = await connect();
      const guest = await connect();
      const outsider = await connect();
      const room = await createRoom(owner, 'Owner');
      await join(guest, room, 'Guest');
      await guest.xmpp.send(xml('message', { to: `${room}/Owner`, type: 'chat', id: 'pm1' }, xml('body', {}, 'psst')));
      const pm = await owner.waitFor((el) => el.is('message') && el.attrs.id === 'pm1');
      expect(pm.attrs.from).to.equal(`${room}/Guest`);
      expect(pm.attrs.type).to.equal('chat');
      expect(pm.getChildText('body')).to.equal('psst');
      expect(mucX(pm), '§7.5: muc#user marks a private message through a room').to.not.equal(undefined);
      expect(occupantIdOf(pm)).to.be.a('string');
      await owner.xmpp.send(xml('message', { to: `${room}/Guest`, type: 'chat', id: 'pm2' }, xml('body', {}, 'hi back')));
      expect((await guest.waitFor((el) => el.is('message') && el.attrs.id === 'pm2')).attrs.from).to.equal(`${room}/Owner`);

      await guest.xmpp.send(xml('message', { to: `${room}/Nobody`, type: 'chat', id: 'pm3' }, xml('body', {}, 'hello?')));
      expect(errorCondition(await guest.waitFor(isErrorReply('message', 'pm3')))).to.equal('item-not-found');
      await outsider.xmpp.send(xml('message', { to: `${room}/Owner`, type: 'chat', id: 'pm4' }, xml('body', {}, 'let me in')));
      expect(errorCondition(await outsider.waitFor(isErrorReply('message', 'pm4')))).to.equal('not-acceptable');
      await owner.expectNone((el) => el.is('message') && el.attrs.id === 'pm4', 200);
    });

    it('kicks an occupant (307) with actor and reason; a participant may not kick, and nobody kicks an owner', async () => {
      const owner = await connect();
      const deputy = await connect();
      const guest = await connect();
      const witness = await connect();
      const room = await createRoom(owner, 'Owner');
      await admin(owner, room, [{ jid: bare(deputy), affiliation: 'admin' }]);
      await join(deputy, room, 'Deputy');
      await join(guest, room, 'Guest');
      await join(witness, room, 'Witness');

      expect(await adminError(witness, room, [{ nick: 'Guest', role: 'none' }]), 'only moderators kick').to.equal('forbidden');
      expect(await adminError(deputy, room, [{ nick: 'Owner', role: 'none' }]), 'an admin cannot kick an owner').to.equal('not-allowed');

      await admin(owner, room, [{ nick: 'Guest', role: 'none' }], 'Behave');
      const kicked = await guest.waitFor(isSelfPresence(`${room}/Guest`, 'unavailable'));
      expect(statusCodes(kicked)).to.deep.equal([110, 307]);
      const item = itemOf(kicked)!;
      expect(item.attrs.role).to.equal('none');
      expect(item.getChildText('reason')).to.equal('Behave');
      expect(item.getChild('actor')?.attrs.nick).to.equal('Owner');
      const seen = await witness.waitFor(isPresenceFrom(`${room}/Guest`, 'unavailable'));
      expect(statusCodes(seen)).to.deep.equal([307]);
      expect(itemOf(seen)!.getChildText('reason')).to.equal('Behave');
      // A kicked user may come back.
      await join(guest, room, 'Guest');
    });

    it('bans a user (301), who then gets forbidden on rejoining', async () => {
      const owner = await connect();
      const guest = await connect();
      const witness = await connect();
      const room = await createRoom(owner, 'Owner');
      await join(guest, room, 'Guest');
      await join(witness, room, 'Witness');
      await admin(owner, room, [{ jid: bare(guest), affiliation: 'outcast' }], 'Spam');
      const banned = await guest.waitFor(isSelfPresence(`${room}/Guest`, 'unavailable'));
      expect(statusCodes(banned)).to.deep.equal([110, 301]);
      expect(itemOf(banned)!.attrs.affiliation).to.equal('outcast');
      expect(itemOf(banned)!.getChildText('reason')).to.equal('Spam');
      expect(statusCodes(await witness.waitFor(isPresenceFrom(`${room}/Guest`, 'unavailable')))).to.deep.equal([301]);
      expect(await joinError(guest, room, 'Again')).to.equal('forbidden');
      expect((await list(owner, room, { affiliation: 'outcast' })).map((i) => i.attrs.jid)).to.deep.equal([bare(guest)]);
      // Unbanning lets the user in again.
      await admin(owner, room, [{ jid: bare(guest), affiliation: 'none' }]);
      await join(guest, room, 'Back');
    });

    it('grants and revokes voice in a moderated room; a visitor\'s message is refused with forbidden', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner', { 'muc#roomconfig_moderatedroom': '1' });
      const self = await join(guest, room, 'Guest');
      expect(itemOf(self)!.attrs.role).to.equal('visitor');
      const id = await say(guest, room, 'may I speak?');
      expect(errorCondition(await guest.waitFor(isErrorReply('message', id)))).to.equal('forbidden');
      await owner.expectNone(isGroupchat(room, 'may I speak?'), 200);

      await admin(owner, room, [{ nick: 'Guest', role: 'participant' }], 'Go ahead');
      const voiced = await guest.waitFor(isSelfPresence(`${room}/Guest`));
      expect(itemOf(voiced)!.attrs.role).to.equal('participant');
      expect((await owner.waitFor((el) => isPresenceFrom(`${room}/Guest`)(el) && itemOf(el)?.attrs.role === 'participant'))).to.not.equal(undefined);
      await sayAndHear(guest, room, 'thank you', [owner, guest]);
      expect((await list(owner, room, { role: 'participant' })).map((i) => i.attrs.nick)).to.deep.equal(['Guest']);

      await admin(owner, room, [{ nick: 'Guest', role: 'visitor' }]);
      await guest.waitFor((el) => isSelfPresence(`${room}/Guest`)(el) && itemOf(el)?.attrs.role === 'visitor');
      const id2 = await say(guest, room, 'again?');
      expect(errorCondition(await guest.waitFor(isErrorReply('message', id2)))).to.equal('forbidden');
    });

    it('passes a visitor\'s voice request to the moderators, and grants voice on approval (§7.13, §8.6)', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner', { 'muc#roomconfig_moderatedroom': '1' });
      await join(guest, room, 'Guest');
      await guest.xmpp.send(xml('message', { to: room }, form('submit', NS.request, { 'muc#role': 'participant' })));
      const request = await owner.waitFor((el) => el.is('message') && el.attrs.from === room && !!el.getChild('x', NS.data));
      const fields = formFields(request.getChild('x', NS.data));
      expect(fields.get('FORM_TYPE')).to.deep.equal([NS.request]);
      expect(fields.get('muc#roomnick')).to.deep.equal(['Guest']);
      expect(fields.get('muc#jid')).to.deep.equal([guest.jid]);
      expect(fields.get('muc#role')).to.deep.equal(['participant']);
      expect(fields.has('muc#request_allow')).to.equal(true);

      await owner.xmpp.send(xml('message', { to: room }, form('submit', NS.request, {
        'muc#role': 'participant', 'muc#jid': guest.jid, 'muc#roomnick': 'Guest', 'muc#request_allow': 'true',
      })));
      const voiced = await guest.waitFor((el) => isSelfPresence(`${room}/Guest`)(el) && itemOf(el)?.attrs.role === 'participant');
      expect(voiced).to.not.equal(undefined);
    });

    it('keeps the member, admin, owner and outcast lists; lower affiliations get forbidden or not-allowed', async () => {
      const owner = await connect();
      const deputy = await connect();
      const member = await connect();
      const stranger = await connect();
      const room = await createRoom(owner, 'Owner');
      const other1 = `${freshUser()}@localhost`;
      const other2 = `${freshUser()}@localhost`;
      await admin(owner, room, [
        { jid: bare(deputy), affiliation: 'admin' }, { jid: bare(member), affiliation: 'member' }, { jid: other1, affiliation: 'outcast' },
      ]);
      expect((await list(owner, room, { affiliation: 'owner' })).map((i) => i.attrs.jid)).to.deep.equal([bare(owner)]);
      expect((await list(owner, room, { affiliation: 'admin' })).map((i) => i.attrs.jid)).to.deep.equal([bare(deputy)]);
      expect((await list(owner, room, { affiliation: 'member' })).map((i) => i.attrs.jid)).to.deep.equal([bare(member)]);
      expect((await list(owner, room, { affiliation: 'outcast' })).map((i) => i.attrs.jid)).to.deep.equal([other1]);
      // An admin keeps the member and outcast lists.
      expect((await list(deputy, room, { affiliation: 'member' })).map((i) => i.attrs.jid)).to.deep.equal([bare(member)]);
      await admin(deputy, room, [{ jid: other2, affiliation: 'member' }]);
      expect((await list(owner, room, { affiliation: 'member' })).map((i) => i.attrs.jid).sort()).to.deep.equal([bare(member), other2].sort());

      // §9: a member (or nobody) in a semi-anonymous room may neither see nor change the lists.
      expect(await iqError(member, 'get', xml('query', { xmlns: NS.admin }, xml('item', { affiliation: 'member' })), room)).to.equal('forbidden');
      expect(await iqError(stranger, 'get', xml('query', { xmlns: NS.admin }, xml('item', { affiliation: 'owner' })), room)).to.equal('forbidden');
      expect(await iqError(stranger, 'get', xml('query', { xmlns: NS.admin }, xml('item', { affiliation: 'outcast' })), room)).to.equal('forbidden');
      expect(await adminError(member, room, [{ jid: other1, affiliation: 'member' }])).to.equal('forbidden');
      expect(await adminError(stranger, room, [{ jid: bare(stranger), affiliation: 'owner' }])).to.equal('forbidden');
      // An admin may not touch owners or make admins and owners.
      expect(await adminError(deputy, room, [{ jid: bare(owner), affiliation: 'outcast' }])).to.equal('not-allowed');
      expect(await adminError(deputy, room, [{ jid: bare(owner), affiliation: 'member' }])).to.equal('not-allowed');
      expect(await adminError(deputy, room, [{ jid: other2, affiliation: 'admin' }])).to.equal('not-allowed');
      expect(await adminError(deputy, room, [{ jid: other2, affiliation: 'owner' }])).to.equal('not-allowed');
      // The last owner cannot step down.
      expect(await adminError(owner, room, [{ jid: bare(owner), affiliation: 'admin' }])).to.equal('conflict');
      // Owners grant and revoke ownership.
      await admin(owner, room, [{ jid: bare(deputy), affiliation: 'owner' }]);
      expect((await list(owner, room, { affiliation: 'owner' })).map((i) => i.attrs.jid).sort()).to.deep.equal([bare(owner), bare(deputy)].sort());
      await admin(deputy, room, [{ jid: bare(owner), affiliation: 'admin' }]);
      expect((await list(deputy, room, { affiliation: 'owner' })).map((i) => i.attrs.jid)).to.deep.equal([bare(deputy)]);
    });

    it('keeps non-members out of a members-only room, removes a member who loses membership (321), and non-members when the room becomes members-only (322)', async () => {
      const owner = await connect();
      const member = await connect();
      const stranger = await connect();
      const room = await createRoom(owner, 'Owner', { 'muc#roomconfig_membersonly': '1' });
      expect(await joinError(stranger, room, 'Stranger')).to.equal('registration-required');
      await admin(owner, room, [{ jid: bare(member), affiliation: 'member' }]);
      const self = await join(member, room, 'Member');
      expect(itemOf(self)!.attrs.affiliation).to.equal('member');
      await admin(owner, room, [{ jid: bare(member), affiliation: 'none' }]);
      const removed = await member.waitFor(isSelfPresence(`${room}/Member`, 'unavailable'));
      expect(statusCodes(removed)).to.deep.equal([110, 321]);
      expect(statusCodes(await owner.waitFor(isPresenceFrom(`${room}/Member`, 'unavailable')))).to.deep.equal([321]);
      expect(await joinError(member, room, 'Member')).to.equal('registration-required');

      const open = await createRoom(owner, 'Owner');
      const keeper = await connect();
      await admin(owner, open, [{ jid: bare(keeper), affiliation: 'member' }]);
      await join(keeper, open, 'Keeper');
      await join(stranger, open, 'Stranger');
      await configure(owner, open, { 'muc#roomconfig_membersonly': '1' });
      const out = await stranger.waitFor(isSelfPresence(`${open}/Stranger`, 'unavailable'));
      expect(statusCodes(out)).to.deep.equal([110, 322]);
      expect(statusCodes(await keeper.waitFor(isPresenceFrom(`${open}/Stranger`, 'unavailable')))).to.deep.equal([322]);
      await sayAndHear(keeper, open, 'members only now', [owner]);
    });

    it('registers a member\'s nick (§7.10), which others then cannot take', async () => {
      const owner = await connect();
      const member = await connect();
      const stranger = await connect();
      const room = await createRoom(owner, 'Owner');
      await admin(owner, room, [{ jid: bare(member), affiliation: 'member' }]);
      const formReply = await iq(member, 'get', xml('query', { xmlns: NS.register }), room);
      const fields = formFields(formReply.getChild('query', NS.register)!.getChild('x', NS.data));
      expect(fields.get('FORM_TYPE')).to.deep.equal([NS.registerForm]);
      expect(fields.has('muc#register_roomnick')).to.equal(true);
      await iq(member, 'set', xml('query', { xmlns: NS.register }, form('submit', NS.registerForm, { 'muc#register_roomnick': 'Reserved' })), room);
      const nick = await iq(member, 'get', xml('query', { xmlns: NS.discoInfo, node: 'x-roomuser-item' }), room);
      expect(nick.getChild('query', NS.discoInfo)!.getChild('identity')?.attrs.name).to.equal('Reserved');
      expect(await joinError(stranger, room, 'Reserved')).to.equal('conflict');
      await join(member, room, 'Reserved');
      // Unaffiliated users may not register on their own.
      expect(await iqError(stranger, 'get', xml('query', { xmlns: NS.register }), room)).to.equal('registration-required');
    });

    it('asks for the password of a protected room: not-authorized without it or with a wrong one', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner', { 'muc#roomconfig_passwordprotectedroom': '1', 'muc#roomconfig_roomsecret': 'secret' });
      expect(await joinError(guest, room, 'Guest')).to.equal('not-authorized');
      expect(await joinError(guest, room, 'Guest', { password: 'wrong' })).to.equal('not-authorized');
      await join(guest, room, 'Guest', { password: 'secret' });
    });

    it('refuses a newcomer with service-unavailable once the room is full', async () => {
      const owner = await connect();
      const a = await connect();
      const b = await connect();
      const room = await createRoom(owner, 'Owner', { 'muc#roomconfig_maxusers': '2' });
      await join(a, room, 'A');
      expect(await joinError(b, room, 'B')).to.equal('service-unavailable');
      await leave(a, room, 'A');
      await join(b, room, 'B');
    });

    it('relays a mediated invitation (muc#user and jabber:x:conference) and the decline back to the inviter', async () => {
      const owner = await connect();
      const invitee = await online();
      const room = await createRoom(owner, 'Owner');
      await owner.xmpp.send(xml('message', { to: room },
        xml('x', { xmlns: NS.user }, xml('invite', { to: bare(invitee) }, xml('reason', {}, 'Come and see')))));
      const invite = await invitee.waitFor((el) => el.is('message') && el.attrs.from === room && !!mucX(el)?.getChild('invite'));
      const inv = mucX(invite)!.getChild('invite')!;
      // The inviter by occupant JID (§7.8.2 allows it; a semi-anonymous room keeps real JIDs to itself).
      expect(inv.attrs.from).to.equal(`${room}/Owner`);
      expect(inv.getChildText('reason')).to.equal('Come and see');
      expect(invite.getChild('x', NS.conference)?.attrs.jid).to.equal(room);

      await invitee.xmpp.send(xml('message', { to: room },
        xml('x', { xmlns: NS.user }, xml('decline', { to: inv.attrs.from }, xml('reason', {}, 'Too busy')))));
      const decline = await owner.waitFor((el) => el.is('message') && !!mucX(el)?.getChild('decline'));
      expect(decline.attrs.from).to.equal(room);
      const dec = mucX(decline)!.getChild('decline')!;
      expect(dec.attrs.from).to.equal(bare(invitee));
      expect(dec.getChildText('reason')).to.equal('Too busy');
      // Only occupants invite.
      const outsider = await connect();
      await outsider.xmpp.send(xml('message', { to: room, id: 'inv-out' }, xml('x', { xmlns: NS.user }, xml('invite', { to: bare(invitee) }))));
      expect(errorCondition(await outsider.waitFor(isErrorReply('message', 'inv-out')))).to.equal('not-acceptable');
    });

    it('passes a direct invitation (XEP-0249) through to the invitee', async () => {
      const inviter = await connect();
      const invitee = await online();
      const room = await createRoom(inviter, 'Owner');
      await inviter.xmpp.send(xml('message', { to: bare(invitee), id: 'direct1' },
        xml('x', { xmlns: NS.conference, jid: room, reason: 'Join us', password: 'none' })));
      const got = await invitee.waitFor((el) => el.is('message') && el.attrs.id === 'direct1');
      expect(got.attrs.from).to.equal(inviter.jid);
      expect(got.getChild('x', NS.conference)!.attrs).to.include({ jid: room, reason: 'Join us', password: 'none' });
    });

    it('destroys a room with a reason and an alternate venue; a non-owner gets forbidden', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner', { 'muc#roomconfig_persistentroom': '1' });
      await join(guest, room, 'Guest');
      const venue = newRoom();
      const destroy = xml('query', { xmlns: NS.owner }, xml('destroy', { jid: venue }, xml('reason', {}, 'Moving house')));
      expect(await iqError(guest, 'set', destroy, room)).to.equal('forbidden');
      await iq(owner, 'set', destroy, room);
      for (const [c, nick] of [[guest, 'Guest'], [owner, 'Owner']] as const) {
        const p = await c.waitFor(isPresenceFrom(`${room}/${nick}`, 'unavailable'));
        const d = mucX(p)!.getChild('destroy')!;
        expect(d.attrs.jid).to.equal(venue);
        expect(d.getChildText('reason')).to.equal('Moving house');
        expect(itemOf(p)!.attrs.role).to.equal('none');
      }
      expect(await iqError(guest, 'get', xml('query', { xmlns: NS.discoInfo }), room), 'the room is gone').to.equal('item-not-found');
    });

    it('keeps one occupant for two resources under one nick: both get messages, leaving from one keeps the other in', async () => {
      const user = freshUser();
      const phone = await connect(user, 'phone');
      const laptop = await connect(user, 'laptop');
      const owner = await connect();
      const room = await createRoom(owner, 'Owner');
      await join(phone, room, 'Juliet');
      await owner.waitFor(isPresenceFrom(`${room}/Juliet`));
      const second = await join(laptop, room, 'Juliet');
      expect(itemOf(second)!.attrs.jid).to.equal(laptop.jid);
      expect(occupantIdOf(second)).to.equal(occupantIdOf(phone.received.find(isSelfPresence(`${room}/Juliet`))!));
      await sayAndHear(owner, room, 'to both', [phone, laptop]);
      await sayAndHear(phone, room, 'from the phone', [owner, laptop, phone]);

      await leave(phone, room, 'Juliet');
      await owner.expectNone(isPresenceFrom(`${room}/Juliet`, 'unavailable'), 300);
      await sayAndHear(owner, room, 'still there?', [laptop]);
      await phone.expectNone(isGroupchat(room, 'still there?'), 200);
      await leave(laptop, room, 'Juliet');
      await owner.waitFor(isPresenceFrom(`${room}/Juliet`, 'unavailable'));
    });
  });

  describe('ids and history', () => {
    it('puts a stable occupant-id (XEP-0421) on presence and messages: same user same id, others and other rooms differ', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner');
      const self = await join(guest, room, 'Guest');
      const id = occupantIdOf(self)!;
      expect(id).to.be.a('string').and.not.equal('');
      expect(occupantIdOf(await owner.waitFor(isPresenceFrom(`${room}/Guest`)))).to.equal(id);
      const msg = await sayAndHear(guest, room, 'with id', [owner]);
      expect(occupantIdOf(msg)).to.equal(id);
      // A forged occupant-id is replaced by the room's.
      await say(guest, room, 'forged', [xml('occupant-id', { xmlns: NS.occupantId, id: 'fake' })]);
      const forged = await owner.waitFor(isGroupchat(room, 'forged'));
      expect(forged.getChildren('occupant-id', NS.occupantId).map((o) => o.attrs.id)).to.deep.equal([id]);
      expect(occupantIdOf(owner.received.find(isSelfPresence(`${room}/Owner`))!)).to.not.equal(id);

      await leave(guest, room, 'Guest');
      expect(occupantIdOf(await join(guest, room, 'Renamed')), 'the same across visits and nicks').to.equal(id);
      const other = await createRoom(owner, 'Owner');
      expect(occupantIdOf(await join(guest, other, 'Guest')), 'not the same in another room').to.not.equal(id);
    });

    it('stamps every archived groupchat message with a stanza-id (XEP-0359, by the room) that MAM returns', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner');
      await join(guest, room, 'Guest');
      const got: XmppElement[] = [];
      for (let i = 0; i < 4; i++) got.push(await sayAndHear(i % 2 ? owner : guest, room, `numbered ${i}`, [guest]));
      // A forged room stanza-id is dropped.
      await say(guest, room, 'forged sid', [xml('stanza-id', { xmlns: NS.sid, id: 'forged', by: room })]);
      got.push(await guest.waitFor(isGroupchat(room, 'forged sid')));
      const ids = got.map((m) => m.getChildren('stanza-id', NS.sid).filter((s) => s.attrs.by === room).map((s) => s.attrs.id));
      for (const list of ids) expect(list).to.have.length(1);
      expect(ids.flat()).to.not.include('forged');
      // The sender gets the same id as everyone else.
      const echo = owner.received.find(isGroupchat(room, 'numbered 1'))!;
      expect(stanzaIdOf(echo, room)).to.equal(ids[1]![0]);
      const page = await mam(guest, room);
      expect(page.ids).to.deep.equal(ids.flat());
      expect(page.bodies).to.deep.equal(['numbered 0', 'numbered 1', 'numbered 2', 'numbered 3', 'forged sid']);
      expect(page.messages[0]!.attrs.from).to.equal(`${room}/Guest`);
      expect(page.messages[0]!.attrs.type).to.equal('groupchat');
    });

    it('sends join history: 30 by default, or as limited by maxstanzas, maxchars and the room\'s maxhistoryfetch; delayed by the room', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner');
      await join(guest, room, 'Guest');
      // Two speakers, so that neither hits the flood limit.
      for (let i = 0; i < 36; i++) await say(i % 2 ? owner : guest, room, `history ${i}`);
      for (let i = 0; i < 36; i++) await owner.waitFor(isGroupchat(room, `history ${i}`));
      // The room's order (two connections may interleave): as every occupant received it.
      const order = owner.received.filter((el) => el.is('message') && el.getChildText('body')?.startsWith('history ') === true).map((m) => m.getChildText('body'));
      const historyOf = (c: LoggedIn) => c.received.filter((el) => el.is('message') && el.getChild('delay', NS.delay) !== undefined && el.getChildText('body')?.startsWith('history ') === true);
      const bodiesOf = (c: LoggedIn) => historyOf(c).map((m) => m.getChildText('body'));

      const fresh = await connect();
      await join(fresh, room, 'Fresh');
      const h = historyOf(fresh);
      expect(bodiesOf(fresh)).to.deep.equal(order.slice(-30));
      for (const m of h) {
        expect(m.getChild('delay', NS.delay)!.attrs.from).to.equal(room);
        expect(m.attrs.type).to.equal('groupchat');
        expect(stanzaIdOf(m, room)).to.be.a('string');
      }
      expect(Date.parse(h[0]!.getChild('delay', NS.delay)!.attrs.stamp!)).to.be.closeTo(Date.now(), 60000);

      const three = await connect();
      await join(three, room, 'Three', { history: { maxstanzas: '3' } });
      expect(bodiesOf(three)).to.deep.equal(order.slice(-3));

      const none = await connect();
      await join(none, room, 'None', { history: { maxchars: '0' } });
      expect(historyOf(none), 'maxchars 0: no history').to.deep.equal([]);

      // maxchars counts whole stanzas: room for one and a half of them gives the newest one.
      const one = await connect();
      await join(one, room, 'One', { history: { maxchars: String(Math.floor(h[29]!.toString().length * 1.5)) } });
      expect(bodiesOf(one)).to.deep.equal(order.slice(-1));

      await configure(owner, room, { 'muc#maxhistoryfetch': '5' });
      const capped = await connect();
      await join(capped, room, 'Capped', { history: { maxstanzas: '20' } });
      expect(bodiesOf(capped)).to.deep.equal(order.slice(-5));
    });

    it('limits join history by seconds and since', async function () {
      this.timeout(20000);
      const owner = await connect();
      // Connected before the messages, so that joining right after them takes milliseconds.
      const [bySeconds, all, bySince] = [await connect(), await connect(), await connect()];
      const room = await createRoom(owner, 'Owner');
      await sayAndHear(owner, room, 'early', [owner]);
      await sleep(2200);
      await sayAndHear(owner, room, 'late 1', [owner]);
      await sayAndHear(owner, room, 'late 2', [owner]);
      const bodies = (c: LoggedIn) => c.received.filter((el) => el.is('message') && !!el.getChild('delay', NS.delay) && !!el.getChild('body')).map((m) => m.getChildText('body'));

      await join(bySeconds, room, 'Seconds', { history: { seconds: '2' } });
      expect(bodies(bySeconds)).to.deep.equal(['late 1', 'late 2']);

      await join(all, room, 'All');
      const history = all.received.filter((el) => el.is('message') && !!el.getChild('delay', NS.delay) && !!el.getChild('body'));
      expect(history.map((m) => m.getChildText('body'))).to.deep.equal(['early', 'late 1', 'late 2']);
      const since = history[1]!.getChild('delay', NS.delay)!.attrs.stamp!;
      await join(bySince, room, 'Since', { history: { since } });
      expect(bodies(bySince)).to.deep.equal(['late 1', 'late 2']);
    });
  });

  describe('the room archive (XEP-0313)', () => {
    /** A room with 12 messages, 6 from each of two occupants, in two batches over a second apart. */
    async function archivedRoom(opts: Fields = {}) {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner', opts);
      await join(guest, room, 'Guest');
      const words = ['apple pie', 'banana', 'cherry', 'apple tart', 'date', 'fig', 'grape', 'apple juice', 'kiwi', 'lemon', 'mango', 'apple crumble'];
      const sids: string[] = [];
      for (let i = 0; i < 12; i++) {
        if (i === 6) await sleep(1100);
        sids.push(stanzaIdOf(await sayAndHear(i % 2 ? owner : guest, room, `${i} ${words[i]}`, [guest]), room)!);
      }
      return { owner, guest, room, sids, bodies: words.map((w, i) => `${i} ${w}`) };
    }

    it('pages backwards from the end with RSM before, and forwards with after', async () => {
      const { guest, room, sids, bodies } = await archivedRoom();
      const last = await mam(guest, room, {}, { max: 5, before: '' });
      expect(last.bodies).to.deep.equal(bodies.slice(7));
      expect(last.ids).to.deep.equal(sids.slice(7));
      expect([last.first, last.last, last.count, last.complete]).to.deep.equal([sids[7], sids[11], 12, false]);
      const middle = await mam(guest, room, {}, { max: 5, before: last.first! });
      expect(middle.bodies).to.deep.equal(bodies.slice(2, 7));
      const first = await mam(guest, room, {}, { max: 5, before: middle.first! });
      expect(first.bodies).to.deep.equal(bodies.slice(0, 2));
      expect(first.complete).to.equal(true);

      const forward = await mam(guest, room, {}, { max: 4, after: sids[3]! });
      expect(forward.bodies).to.deep.equal(bodies.slice(4, 8));
      expect(forward.complete).to.equal(false);
      const rest = await mam(guest, room, {}, { max: 10, after: forward.last! });
      expect(rest.bodies).to.deep.equal(bodies.slice(8));
      expect(rest.complete).to.equal(true);
    });

    it('filters by occupant JID, by real JID for those who may see it, and by start and end', async () => {
      const { owner, guest, room, bodies } = await archivedRoom();
      const byNick = await mam(guest, room, { with: `${room}/Guest` });
      expect(byNick.bodies).to.deep.equal(bodies.filter((_, i) => i % 2 === 0));
      // The moderator of a semi-anonymous room may filter by real JID; a participant may not.
      const byJid = await mam(owner, room, { with: bare(guest) });
      expect(byJid.bodies).to.deep.equal(bodies.filter((_, i) => i % 2 === 0));
      expect((await mam(guest, room, { with: bare(owner) })).bodies, 'participants cannot match real JIDs').to.deep.equal([]);

      const all = await mam(guest, room);
      const start = all.stamps[6]!;
      const afterStart = await mam(guest, room, { start });
      expect(afterStart.bodies).to.deep.equal(bodies.slice(6));
      const end = new Date(Date.parse(start) - 1).toISOString();
      const beforeEnd = await mam(guest, room, { end });
      expect(beforeEnd.bodies).to.deep.equal(bodies.slice(0, 6));
      expect((await mam(guest, room, { start: all.stamps[2]!, end })).bodies).to.deep.equal(bodies.slice(2, 6));
    });

    it('searches the full text (XEP-0431), newest first', async () => {
      const { guest, room } = await archivedRoom();
      const hits = await mam(guest, room, { [`{${NS.fulltext}}fulltext`]: 'apple' });
      expect(hits.bodies).to.deep.equal(['11 apple crumble', '7 apple juice', '3 apple tart', '0 apple pie']);
      expect(hits.count).to.equal(4);
      const paged = await mam(guest, room, { [`{${NS.fulltext}}fulltext`]: 'apple' }, { max: 2 });
      expect(paged.bodies).to.deep.equal(['11 apple crumble', '7 apple juice']);
      const next = await mam(guest, room, { [`{${NS.fulltext}}fulltext`]: 'apple' }, { max: 2, after: paged.last! });
      expect(next.bodies).to.deep.equal(['3 apple tart', '0 apple pie']);
      expect((await mam(guest, room, { [`{${NS.fulltext}}fulltext`]: 'durian' })).bodies).to.deep.equal([]);
    });

    it('answers bad queries: a bad date with bad-request, an unknown id with item-not-found', async () => {
      const { guest, room } = await archivedRoom();
      expect(await mamError(guest, room, { start: 'last tuesday' })).to.equal('bad-request');
      expect(await mamError(guest, room, { end: '2024-13-45T99:00:00Z' })).to.equal('bad-request');
      expect(await mamError(guest, room, { 'after-id': 'no-such-id' })).to.equal('item-not-found');
      expect(await mamError(guest, room, {}, { after: 'no-such-id' })).to.equal('item-not-found');
    });

    it('keeps a members-only room\'s archive from non-members (forbidden)', async () => {
      const owner = await connect();
      const member = await connect();
      const stranger = await connect();
      const room = await createRoom(owner, 'Owner', { 'muc#roomconfig_membersonly': '1' });
      await admin(owner, room, [{ jid: bare(member), affiliation: 'member' }]);
      await sayAndHear(owner, room, 'members only', [owner]);
      expect(await mamError(stranger, room, {})).to.equal('forbidden');
      // A member reads it without being in the room.
      expect((await mam(member, room)).bodies).to.deep.equal(['members only']);
    });
  });

  describe('moderation (XEP-0425)', () => {
    it('lets a moderator retract a message: occupants get the retraction, MAM returns a tombstone; non-moderators get forbidden', async () => {
      const owner = await connect();
      const guest = await connect();
      const witness = await connect();
      const room = await createRoom(owner, 'Owner');
      await join(guest, room, 'Guest');
      await join(witness, room, 'Witness');
      const spam = await sayAndHear(guest, room, 'buy cheap stuff', [witness, owner]);
      const sid = stanzaIdOf(spam, room)!;
      const guestId = occupantIdOf(spam);
      const moderate = xml('moderate', { xmlns: NS.moderate, id: sid }, xml('retract', { xmlns: NS.retract }), xml('reason', {}, 'Spam'));

      expect(await iqError(witness, 'set', moderate, room)).to.equal('forbidden');
      await iq(owner, 'set', moderate, room);
      for (const c of [witness, guest, owner]) {
        const notice = await c.waitFor((el) => el.is('message') && el.attrs.from === room && !!el.getChild('retract', NS.retract));
        expect(notice.attrs.type).to.equal('groupchat');
        const retract = notice.getChild('retract', NS.retract)!;
        expect(retract.attrs.id).to.equal(sid);
        expect(retract.getChild('moderated', NS.moderate)?.attrs.by).to.equal(`${room}/Owner`);
        expect(retract.getChildText('reason')).to.equal('Spam');
      }

      // XEP-0425 §7: the archived message becomes a tombstone, from its author, without its content.
      const page = await mam(witness, room);
      const at = page.ids.indexOf(sid);
      expect(at, 'the message keeps its place in the archive').to.be.at.least(0);
      const tombstone = page.messages[at]!;
      expect(tombstone.attrs.from).to.equal(`${room}/Guest`);
      expect(tombstone.getChildText('body')).to.not.equal('buy cheap stuff');
      expect(tombstone.toString()).to.not.include('buy cheap stuff');
      expect(occupantIdOf(tombstone)).to.equal(guestId);
      const retracted = tombstone.getChild('retracted', NS.retract);
      expect(retracted, `a <retracted/> tombstone: ${String(tombstone)}`).to.not.equal(undefined);
      expect(retracted!.getChild('moderated', NS.moderate)?.attrs.by).to.equal(`${room}/Owner`);
      // Nor does it come back as join history.
      const late = await connect();
      await join(late, room, 'Late');
      expect(late.received.some((el) => el.getChildText('body') === 'buy cheap stuff')).to.equal(false);
      expect(await iqError(owner, 'set', xml('moderate', { xmlns: NS.moderate, id: 'no-such-id' }, xml('retract', { xmlns: NS.retract })), room)).to.equal('item-not-found');
    });
  });

  describe('self-ping (XEP-0410) and presence broadcast', () => {
    it('answers a ping to one\'s own occupant JID, and not-acceptable to a non-occupant', async () => {
      const owner = await connect();
      const outsider = await connect();
      const room = await createRoom(owner, 'Owner');
      const r = await iq(owner, 'get', xml('ping', { xmlns: NS.ping }), `${room}/Owner`);
      expect(r.attrs.type).to.equal('result');
      expect(r.attrs.from).to.equal(`${room}/Owner`);
      expect(await iqError(outsider, 'get', xml('ping', { xmlns: NS.ping }), `${room}/Owner`)).to.equal('not-acceptable');
      await leave(owner, room, 'Owner');
    });

    it('broadcasts only the configured roles\' presence, while self-presence still arrives', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner', { 'muc#roomconfig_presencebroadcast': ['moderator'] });
      const self = await join(guest, room, 'Guest');
      expect(itemOf(self)!.attrs.role).to.equal('participant');
      expect(guest.received.some(isPresenceFrom(`${room}/Owner`)), 'moderators\' presence is broadcast').to.equal(true);
      await owner.expectNone(isPresenceFrom(`${room}/Guest`), 300);
      await sayAndHear(guest, room, 'unseen but heard', [owner]);
      await leave(guest, room, 'Guest');
      await owner.expectNone(isPresenceFrom(`${room}/Guest`, 'unavailable'), 300);
    });
  });

  describe('bad input', () => {
    it('answers a join without a nick (presence to the bare room JID) with jid-malformed', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner');
      await guest.xmpp.send(xml('presence', { to: room }, xml('x', { xmlns: NS.muc })));
      const err = await guest.waitFor((el) => el.is('presence') && el.attrs.type === 'error');
      expect(errorCondition(err)).to.equal('jid-malformed');
      const nowhere = newRoom();
      await guest.xmpp.send(xml('presence', { to: nowhere }, xml('x', { xmlns: NS.muc })));
      const err2 = await guest.waitFor((el) => el.is('presence') && el.attrs.type === 'error' && el.attrs.from === nowhere);
      expect(errorCondition(err2), 'also where no room exists yet').to.equal('jid-malformed');
    });

    it('answers a nick over 64 characters with jid-malformed, and accepts one of 64', async () => {
      const owner = await connect();
      const guest = await connect();
      const room = await createRoom(owner, 'Owner');
      expect(await joinError(guest, room, 'n'.repeat(65))).to.equal('jid-malformed');
      expect(await joinError(guest, newRoom(), 'x'.repeat(65)), 'also when creating a room').to.equal('jid-malformed');
      await join(guest, room, 'n'.repeat(64));
    });

    it('answers a groupchat message from a non-occupant with not-acceptable', async () => {
      const owner = await connect();
      const outsider = await connect();
      const room = await createRoom(owner, 'Owner');
      const id = await say(outsider, room, 'let me talk');
      expect(errorCondition(await outsider.waitFor(isErrorReply('message', id)))).to.equal('not-acceptable');
      await owner.expectNone(isGroupchat(room, 'let me talk'), 200);
    });

    it('answers a visitor\'s message in a moderated room with forbidden', async () => {
      const owner = await connect();
      const visitor = await connect();
      const room = await createRoom(owner, 'Owner', { 'muc#roomconfig_moderatedroom': '1' });
      await join(visitor, room, 'Visitor');
      const id = await say(visitor, room, 'hello?');
      const err = await visitor.waitFor(isErrorReply('message', id));
      expect(errorCondition(err)).to.equal('forbidden');
      await owner.expectNone(isGroupchat(room, 'hello?'), 200);
    });

    it('answers an unknown configuration field with bad-request and changes nothing', async () => {
      const owner = await connect();
      const room = await createRoom(owner, 'Owner');
      const err = await iqError(owner, 'set', xml('query', { xmlns: NS.owner },
        form('submit', NS.roomconfig, { 'muc#roomconfig_roomname': 'Changed', 'muc#roomconfig_nonsense': '1' })), room);
      expect(err).to.equal('bad-request');
      const fields = formFields((await iq(owner, 'get', xml('query', { xmlns: NS.owner }), room)).getChild('query', NS.owner)!.getChild('x', NS.data));
      expect(fields.get('muc#roomconfig_roomname')).to.deep.equal(['']);
    });

    it('answers malformed configuration forms with bad-request', async () => {
      const owner = await connect();
      const room = await createRoom(owner, 'Owner');
      const submit = (x: XmppElement | null) => iqError(owner, 'set', xml('query', { xmlns: NS.owner }, x), room);
      expect(await submit(null), 'no form at all').to.equal('bad-request');
      expect(await submit(xml('x', { xmlns: NS.data }, xml('field', { var: 'muc#roomconfig_roomname' }, xml('value', {}, 'x')))), 'no form type').to.equal('bad-request');
      expect(await submit(xml('x', { xmlns: NS.data, type: 'submit' },
        xml('field', { var: 'muc#roomconfig_roomname' }, xml('value', {}, 'a')),
        xml('field', { var: 'muc#roomconfig_roomname' }, xml('value', {}, 'b')))), 'a field twice').to.equal('bad-request');
      expect(await submit(form('submit', 'urn:example:not-a-room-config', {})), 'another form type').to.equal('bad-request');
      expect(await submit(form('submit', NS.roomconfig, { 'muc#roomconfig_persistentroom': 'maybe' })), 'a bad value').to.equal('not-acceptable');
    });

    it('answers flooding with resource-constraint (type wait) while the room keeps working for others', async () => {
      const owner = await connect();
      const flooder = await connect();
      const room = await createRoom(owner, 'Owner');
      await join(flooder, room, 'Flooder');
      const ids: string[] = [];
      for (let i = 0; i < 45; i++) ids.push(await say(flooder, room, `flood ${i}`));
      const errors = await Promise.all(ids.slice(-5).map((id) => flooder.waitFor(isErrorReply('message', id))));
      for (const e of errors) {
        expect(errorCondition(e)).to.equal('resource-constraint');
        expect(e.getChild('error')!.attrs.type).to.equal('wait');
      }
      // The burst (30) got through; the rest did not.
      await owner.waitFor(isGroupchat(room, 'flood 29'));
      await owner.expectNone(isGroupchat(room, 'flood 44'), 200);
      const delivered = owner.received.filter((el) => el.getChildText('body')?.startsWith('flood ') === true).length;
      expect(delivered).to.be.at.least(30).and.below(45);
      await sayAndHear(owner, room, 'order restored', [owner, flooder]);
      // The flooder may speak again once the bucket refills.
      await sleep(300);
      await sayAndHear(flooder, room, 'sorry', [owner]);
    });
  });
});
