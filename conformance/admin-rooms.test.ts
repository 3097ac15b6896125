// Room administration through both faces: the CLI (through the running server's admin socket) and
// XEP-0050 ad-hoc commands. A live room changes only through the node that holds it, in its order,
// exactly as an owner's request would change it; a room that cannot do it changes nothing and says why.
import { expect } from 'chai';
import {
  startServer, login, randomName, iq, xml, perch, expectOk, useTestDatabase,
  type RunningServer, type LoggedIn, type XmppElement,
} from './harness.js';

const REDIS_URL = process.env.CONFORMANCE_REDIS_URL ?? 'redis://127.0.0.1:6379';
const SERVICE = 'conference.localhost';
const NS = {
  user: 'http://jabber.org/protocol/muc#user',
  commands: 'http://jabber.org/protocol/commands',
  data: 'jabber:x:data',
};

const statusCodes = (el: XmppElement) => (el.getChild('x', NS.user)?.getChildren('status') ?? []).map((s) => Number(s.attrs.code)).sort((a, b) => a - b);
const isPresence = (from: string, type?: string) => (el: XmppElement) => el.is('presence') && el.attrs.from === from && el.attrs.type === type;

/** Joins (a groupchat 1.0 join makes an instant room) and waits for the self-presence. */
async function join(c: LoggedIn, room: string, nick: string): Promise<void> {
  await c.xmpp.send(xml('presence', { to: `${room}/${nick}` }));
  await c.waitFor((el) => isPresence(`${room}/${nick}`)(el) && statusCodes(el).includes(110));
}

async function say(c: LoggedIn, room: string, body: string): Promise<void> {
  await c.xmpp.send(xml('message', { to: room, type: 'groupchat' }, xml('body', {}, body)));
  await c.waitFor((el) => el.is('message') && el.attrs.type === 'groupchat' && el.getChildText('body') === body);
}

describe('conformance: room administration (CLI and ad-hoc faces)', function () {
  this.timeout(120000);
  const clients: LoggedIn[] = [];
  const servers: RunningServer[] = [];
  const connect = async (s: RunningServer, user: string) => {
    const c = await login(s.ports.c2s, user, 'pw');
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop()));
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  describe('on embedded PGlite', () => {
    let server: RunningServer;
    beforeEach(async () => {
      server = await startServer({ users: { root: 'pw', alice: 'pw', bob: 'pw' }, admins: ['root@localhost'] });
      servers.push(server);
    });

    it('bans a user from a live room through the CLI: the room tells everyone (301), in its order', async () => {
      const room = `${randomName('ban')}@${SERVICE}`;
      const alice = await connect(server, 'alice');
      const bob = await connect(server, 'bob');
      await join(alice, room, 'alice');
      await join(bob, room, 'bob');
      await say(alice, room, 'before the ban');
      const r = expectOk(await perch(['admin', 'room-set-affiliation', '--room', room, '--jids', 'bob@localhost',
        '--affiliation', 'outcast', '--reason', 'spam'], { dataDir: server.dataDir }));
      expect(r.stdout).to.match(/bob@localhost: outcast/);
      const gone = await bob.waitFor((el) => isPresence(`${room}/bob`, 'unavailable')(el) && statusCodes(el).includes(301));
      expect(gone.getChild('x', NS.user)!.getChild('item')!.getChildText('reason')).to.equal('spam');
      await alice.waitFor((el) => isPresence(`${room}/bob`, 'unavailable')(el) && statusCodes(el).includes(301));
      // Banned means banned: the room refuses bob's return.
      await bob.xmpp.send(xml('presence', { to: `${room}/bob` }));
      const refused = await bob.waitFor((el) => el.is('presence') && el.attrs.type === 'error' && el.attrs.from === `${room}/bob`);
      expect(refused.getChild('error')!.getChild('forbidden')).to.not.equal(undefined);
    });

    it('destroys a live room through the CLI: occupants leave with the reason and the venue', async () => {
      const room = `${randomName('gone')}@${SERVICE}`;
      const alice = await connect(server, 'alice');
      await join(alice, room, 'alice');
      expectOk(await perch(['admin', 'room-destroy', '--room', room, '--reason', 'moved', '--venue', `new@${SERVICE}`], { dataDir: server.dataDir }));
      const left = await alice.waitFor(isPresence(`${room}/alice`, 'unavailable'));
      const destroy = left.getChild('x', NS.user)!.getChild('destroy')!;
      expect(destroy.attrs.jid).to.equal(`new@${SERVICE}`);
      expect(destroy.getChildText('reason')).to.equal('moved');
    });

    it('changes nothing and says why for a room that does not exist, or a bad room or affiliation', async () => {
      const missing = await perch(['admin', 'room-destroy', '--room', `${randomName('none')}@${SERVICE}`], { dataDir: server.dataDir });
      expect(missing.code).to.equal(1);
      expect(missing.stdout + missing.stderr).to.match(/no such room/);
      const notRoom = await perch(['admin', 'room-destroy', '--room', 'alice@localhost'], { dataDir: server.dataDir });
      expect(notRoom.code).to.equal(2);
      expect(notRoom.stdout + notRoom.stderr).to.match(/not a MUC service/);
      const badAff = await perch(['admin', 'room-set-affiliation', '--room', `x@${SERVICE}`, '--jids', 'bob@localhost', '--affiliation', 'king'], { dataDir: server.dataDir });
      expect(badAff.code).to.equal(2);
    });

    it('refuses what the room refuses: removing the last owner leaves the room as it was', async () => {
      const room = `${randomName('own')}@${SERVICE}`;
      const alice = await connect(server, 'alice');
      await join(alice, room, 'alice');
      const r = await perch(['admin', 'room-set-affiliation', '--room', room, '--jids', 'alice@localhost', '--affiliation', 'none'], { dataDir: server.dataDir });
      expect(r.code).to.equal(1);
      // Alice still owns it: she can still read the owner list.
      const owners = await iq(alice, 'get', xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { affiliation: 'owner' })), room);
      expect(owners.getChild('query')!.getChildren('item').map((i: XmppElement) => i.attrs.jid)).to.include('alice@localhost');
    });

    it('is the same operation as an ad-hoc command (XEP-0050 face), for server admins only', async () => {
      const room = `${randomName('adhoc')}@${SERVICE}`;
      const alice = await connect(server, 'alice');
      const bob = await connect(server, 'bob');
      await join(alice, room, 'alice');
      await join(bob, room, 'bob');
      const node = 'http://jabber.org/protocol/admin#room-set-affiliation';
      const submit = (c: LoggedIn, sessionid: string) => iq(c, 'set', xml('command', { xmlns: NS.commands, node, sessionid },
        xml('x', { xmlns: NS.data, type: 'submit' },
          xml('field', { var: 'room' }, xml('value', {}, room)),
          xml('field', { var: 'jids' }, xml('value', {}, 'bob@localhost')),
          xml('field', { var: 'affiliation' }, xml('value', {}, 'member')))), 'localhost');
      // Not an admin: refused before anything happens.
      const denied = await alice.xmpp.iqCaller.request(xml('iq', { type: 'set', to: 'localhost' },
        xml('command', { xmlns: NS.commands, node, action: 'execute' }))).catch((e: { condition?: string }) => e);
      expect((denied as { condition?: string }).condition).to.equal('forbidden');
      const root = await connect(server, 'root');
      const first = await iq(root, 'set', xml('command', { xmlns: NS.commands, node, action: 'execute' }), 'localhost');
      const done = await submit(root, first.getChild('command', NS.commands)!.attrs.sessionid as string);
      expect(done.getChild('command', NS.commands)!.attrs.status).to.equal('completed');
      // Bob became a member: everyone sees his new affiliation.
      const p = await alice.waitFor((el) => el.is('presence') && el.attrs.from === `${room}/bob` && el.getChild('x', NS.user)?.getChild('item')?.attrs.affiliation === 'member');
      expect(p.attrs.type).to.equal(undefined);
    });
  });

  describe('in a cluster (PostgreSQL + Redis)', () => {
    const db = useTestDatabase('perch_admin_rooms_');

    it('changes a room held by another node through that node, and the answer comes back', async () => {
      const nodeA = await startServer({ databaseUrl: db.url, redisUrl: REDIS_URL, nodeId: randomName('rooms-a-'), users: { alice: 'pw', bob: 'pw' } });
      servers.push(nodeA);
      const nodeB = await startServer({ databaseUrl: db.url, redisUrl: REDIS_URL, nodeId: randomName('rooms-b-'), skipUserCreation: true });
      servers.push(nodeB);
      const room = `${randomName('far')}@${SERVICE}`;
      // The room lives on node B: its first occupant joined there.
      const alice = await connect(nodeB, 'alice');
      const bob = await connect(nodeB, 'bob');
      await join(alice, room, 'alice');
      await join(bob, room, 'bob');
      const r = await perch(['admin', 'room-set-affiliation', '--room', room, '--jids', 'bob@localhost', '--affiliation', 'outcast'],
        { dataDir: nodeA.dataDir, databaseUrl: db.url });
      expectOk(r);
      await bob.waitFor((el) => isPresence(`${room}/bob`, 'unavailable')(el) && statusCodes(el).includes(301));
    });
  });
});
