// The persistent-chat operations on a real server core (PGlite): every refusal with its condition
// and text, the rights of admins, managers and creators, moves, invitations, and the same rules
// without a running server (a model built from the stores).
import { expect } from 'chai';
import { Element } from '../../protocol/xml.js';
import { chatModel } from '../../src/pchat/module.js';
import {
  ChatOpError, createCategory, createRoom, deleteCategory, deleteRoom, disableRoom, enableRoom, listCategories, listRooms,
  showRoom, updateCategory, updateRoom, type ChatActor, type ChatOpContext,
} from '../../src/pchat/operations.js';
import {
  addOrgUnit, createGroup, deleteGroup, deleteOrgUnit, listOrgUnits, setUserOrgUnit, updateGroup,
} from '../../src/pchat/directory-ops.js';
import { createAddin, deleteAddin, getPolicies, setPolicy, setServiceSettings } from '../../src/pchat/settings-ops.js';
import { ASSOC_NS, INVITATIONS_NS } from '../../src/pchat/user-iq.js';
import { SERVICE, startRoomKit, type RoomKit } from '../muc/kit.js';

const ADMIN: ChatActor = { kind: 'account', bare: 'root@localhost' };
const LOCAL: ChatActor = { kind: 'local' };
const as = (bare: string): ChatActor => ({ kind: 'account', bare });

async function refused(p: Promise<unknown>, condition: string, text: RegExp): Promise<ChatOpError> {
  try {
    await p;
  } catch (e) {
    expect(e, String(e)).to.be.instanceOf(ChatOpError);
    const err = e as ChatOpError;
    expect(err.condition, err.message).to.equal(condition);
    expect(err.message).to.match(text);
    return err;
  }
  throw new Error(`expected a ${condition} refusal`);
}

describe('persistent-chat operations', function () {
  this.timeout(60000);
  let kit: RoomKit;
  let online: ChatOpContext;

  before(async () => {
    kit = await startRoomKit({ admins: ['root@localhost'] });
    const server = kit.server;
    online = {
      stores: server.stores, model: chatModel(server), domain: server.domain, services: [SERVICE],
      isAdmin: (b) => server.isAdmin(b), route: (s: Element) => server.router.route(s),
    };
    await createGroup(online, LOCAL, 'traders', { members: { replace: ['tom@localhost'] } });
    await createGroup(online, LOCAL, 'analysts', { members: { replace: ['ann@localhost', 'alice@localhost'] } });
    await createCategory(online, LOCAL, null, {
      name: 'Finance', allowed: { replace: ['domain:localhost'] }, denied: { replace: ['group:traders'] },
      creators: { replace: ['alice@localhost'] }, invitations: true,
    });
    await createCategory(online, LOCAL, null, { name: 'Ops', allowed: { replace: ['group:analysts', 'bob@localhost'] }, creators: { replace: ['group:analysts'] } });
  });
  after(async () => kit?.stop());

  describe('categories', () => {
    it('are for admins only', async () => {
      await refused(createCategory(online, as('alice@localhost'), null, { name: 'Mine' }), 'forbidden', /only administrators create categories/);
      await refused(updateCategory(online, as('alice@localhost'), null, 'Finance', { description: 'x' }), 'forbidden', /only administrators/);
      await refused(deleteCategory(online, as('alice@localhost'), null, 'Finance'), 'forbidden', /only administrators/);
    });

    it('refuse unknown groups and org units, naming them', async () => {
      await refused(createCategory(online, ADMIN, null, { name: 'Bad', allowed: { replace: ['group:nope'] } }), 'item-not-found', /^principal not provisioned: group:nope$/);
      await refused(createCategory(online, ADMIN, null, { name: 'Bad', allowed: { replace: ['ou:/no/where'] } }), 'item-not-found', /^principal not provisioned: ou:\/no\/where$/);
    });

    it('allow editing posted messages unless told otherwise, and change it', async () => {
      const created = await createCategory(online, ADMIN, null, { name: 'Frozen', allowed: { replace: ['domain:localhost'] }, editing: false });
      expect(created.editing).to.equal(false);
      expect((await updateCategory(online, ADMIN, null, 'Frozen', { editing: true })).after.editing).to.equal(true);
      expect((await updateCategory(online, ADMIN, null, 'Frozen', { description: 'x' })).after.editing).to.equal(true);
      const open = await createCategory(online, ADMIN, null, { name: 'Loose', allowed: { replace: ['domain:localhost'] } });
      expect(open.editing).to.equal(true);
      await deleteCategory(online, ADMIN, null, 'Frozen');
      await deleteCategory(online, ADMIN, null, 'Loose');
    });

    it('keep creators inside the scope', async () => {
      await refused(updateCategory(online, ADMIN, null, 'Finance', { creators: { add: ['group:traders'] } }), 'not-acceptable',
        /^group:traders is outside the scope of category Finance \(creator: denied/);
      await refused(updateCategory(online, ADMIN, null, 'Ops', { creators: { add: ['carol@localhost'] } }), 'not-acceptable',
        /^carol@localhost is outside the scope of category Ops/);
    });

    it('keep their lists when the scope narrows: access is computed', async () => {
      const u = await updateCategory(online, ADMIN, null, 'Ops', { denied: { add: ['alice@localhost'] } });
      expect(u.after.creators).to.deep.equal(['group:analysts']);
      expect((await listCategories(online, as('alice@localhost'), null)).map((c) => c.name)).to.not.include('Ops');
      await updateCategory(online, ADMIN, null, 'Ops', { denied: { replace: null } });
      expect((await listCategories(online, as('alice@localhost'), null)).map((c) => c.name)).to.include('Ops');
    });

    it('have unique names of at most 256 characters', async () => {
      await refused(createCategory(online, ADMIN, null, { name: 'finance' }), 'conflict', /finance is already used by a category/);
      await refused(createCategory(online, ADMIN, null, { name: 'x'.repeat(257) }), 'not-acceptable', /longer than 256/);
      await refused(createCategory(online, ADMIN, null, { name: '  ' }), 'bad-request', /empty/);
    });

    it('are listed to admins, and to others where they may create', async () => {
      expect((await listCategories(online, ADMIN, null)).map((c) => c.name)).to.include.members(['Finance', 'Ops']);
      expect((await listCategories(online, as('ann@localhost'), null)).map((c) => c.name)).to.deep.equal(['Ops']);
      expect(await listCategories(online, as('carol@localhost'), null)).to.deep.equal([]);
    });
  });

  describe('rooms', () => {
    it('are created by creators, who become manager and member', async () => {
      const r = await createRoom(online, as('alice@localhost'), null, 'desk', { category: 'finance' });
      expect(r).to.include({ room: 'desk', name: 'desk', category: 'Finance', privacy: 'closed', type: 'normal' });
      expect(r.managers).to.deep.equal(['alice@localhost']);
      expect(r.members).to.deep.equal(['alice@localhost']);
      expect(chatModel(kit.server).forService(SERVICE)!.room('desk')).to.include({ name: 'desk' });
    });

    it('refuse who may not create there', async () => {
      await refused(createRoom(online, as('carol@localhost'), null, 'nope', { category: 'Finance' }), 'forbidden', /you may not create rooms in category Finance/);
      await refused(createRoom(online, ADMIN, null, 'nope', { category: 'Nowhere' }), 'item-not-found', /no category Nowhere/);
    });

    it('refuse names taken by a room or a category, and long texts', async () => {
      await refused(createRoom(online, ADMIN, null, 'desk', { category: 'Finance' }), 'conflict', /already exists/);
      await refused(createRoom(online, ADMIN, null, 'other', { category: 'Finance', name: 'DESK' }), 'conflict', /DESK is already used by a room/);
      await refused(createRoom(online, ADMIN, null, 'other', { category: 'Finance', name: 'ops' }), 'conflict', /ops is already used by a category/);
      await refused(createRoom(online, ADMIN, null, 'other', { category: 'Finance', description: 'd'.repeat(257) }), 'not-acceptable', /longer than 256/);
    });

    it('refuse principals outside the category scope with not-acceptable, naming them', async () => {
      await refused(updateRoom(online, ADMIN, null, 'desk', { members: { add: ['group:traders'] } }), 'not-acceptable',
        /^group:traders is outside the scope of category Finance \(member: denied/);
      await refused(updateRoom(online, ADMIN, null, 'desk', { managers: { add: ['tom@localhost'] } }), 'not-acceptable',
        /^tom@localhost is outside the scope of category Finance \(manager: denied/);
      await refused(updateRoom(online, ADMIN, null, 'desk', { members: { add: ['group:missing'] } }), 'item-not-found', /^principal not provisioned: group:missing$/);
      await refused(updateRoom(online, ADMIN, null, 'desk', { members: { add: ['someone@elsewhere.example'] } }), 'not-acceptable',
        /someone@elsewhere.example is outside the scope of category Finance/);
    });

    it('take a group inside the scope when every user it holds is', async () => {
      const u = await updateRoom(online, ADMIN, null, 'desk', { members: { add: ['group:analysts'] } });
      expect(u.after.members).to.have.members(['alice@localhost', 'group:analysts']);
    });

    it('have presenters only as auditoriums, and presenters are members', async () => {
      await refused(updateRoom(online, ADMIN, null, 'desk', { presenters: { add: ['alice@localhost'] } }), 'not-acceptable', /only auditorium rooms have presenters/);
      await refused(updateRoom(online, ADMIN, null, 'desk', { type: 'auditorium', presenters: { add: ['bob@localhost'] } }), 'not-acceptable',
        /presenter bob@localhost is not a member of desk@conference.localhost/);
      const u = await updateRoom(online, ADMIN, null, 'desk', { type: 'auditorium', presenters: { add: ['ann@localhost'] } });
      expect(u.after.presenters).to.deep.equal(['ann@localhost']);
      const back = await updateRoom(online, ADMIN, null, 'desk', { type: 'normal' });
      expect(back.after.presenters).to.deep.equal([]);
      expect(back.dropped).to.deep.equal(['presenters: ann@localhost (no longer an auditorium)']);
    });

    it('let managers change their room, but not move it where they may not create, nor enable it, nor delete it', async () => {
      const alice = as('alice@localhost');
      const u = await updateRoom(online, alice, null, 'desk', { name: 'Trading Desk', description: 'prices' });
      expect(u.after).to.include({ name: 'Trading Desk', description: 'prices' });
      await refused(updateRoom(online, as('ann@localhost'), null, 'desk', { name: 'x' }), 'forbidden', /you do not manage desk@conference.localhost/);
      await refused(showRoom(online, as('ann@localhost'), null, 'desk'), 'forbidden', /you do not manage/);
      const d = await disableRoom(online, alice, null, 'desk');
      expect(d.after.disabled).to.equal(true);
      await refused(enableRoom(online, alice, null, 'desk'), 'forbidden', /only administrators enable a disabled room/);
      expect((await enableRoom(online, ADMIN, null, 'desk')).after.disabled).to.equal(false);
      await refused(deleteRoom(online, alice, null, 'desk'), 'forbidden', /only administrators delete rooms/);
      // bob manages too, but creates nowhere; alice creates in Ops (analysts are its creators) and Finance.
      await updateRoom(online, alice, null, 'desk', { managers: { add: ['bob@localhost'] } });
      await refused(updateRoom(online, as('bob@localhost'), null, 'desk', { category: 'Ops' }), 'forbidden', /you may not move rooms into category Ops/);
      const moved = await updateRoom(online, alice, null, 'desk', { category: 'ops' });
      expect(moved.after.category).to.equal('Ops');
      expect(moved.after.managers).to.deep.equal(['alice@localhost', 'bob@localhost']);
      await updateRoom(online, alice, null, 'desk', { category: 'Finance', managers: { remove: ['bob@localhost'] } });
    });

    it('keep a room without a member list inheriting on an add, and refuse a remove from it', async () => {
      await createRoom(online, LOCAL, null, 'lobby', { category: 'Finance' });
      expect(chatModel(kit.server).forService(SERVICE)!.room('lobby')!.members).to.equal(null);
      const u = await updateRoom(online, ADMIN, null, 'lobby', { members: { add: ['bob@localhost'] } });
      expect(u.after.members, 'everyone in scope stays a member').to.equal(null);
      await refused(updateRoom(online, ADMIN, null, 'lobby', { members: { add: ['tom@localhost'] } }), 'not-acceptable', /tom@localhost is outside the scope/);
      await refused(updateRoom(online, ADMIN, null, 'lobby', { members: { remove: ['bob@localhost'] } }), 'not-acceptable', /has no member list.*give the whole list/);
      const listed = await updateRoom(online, ADMIN, null, 'lobby', { members: { replace: ['ann@localhost'] } });
      expect(listed.after.members).to.deep.equal(['ann@localhost']);
      await deleteRoom(online, ADMIN, null, 'lobby');
    });

    it('drop on a move every listed principal the new scope excludes, and say which', async () => {
      await createRoom(online, LOCAL, null, 'mixed', { category: 'Finance', members: { replace: ['bob@localhost', 'carol@localhost', 'ann@localhost'] }, managers: { replace: ['carol@localhost'] } });
      const u = await updateRoom(online, ADMIN, null, 'mixed', { category: 'Ops' });
      expect(u.after.members).to.have.members(['bob@localhost', 'ann@localhost']);
      expect(u.after.managers).to.deep.equal([]);
      expect(u.dropped).to.have.members(['members: carol@localhost', 'managers: carol@localhost']);
    });

    it('list for admins every room, for managers their own, filtered', async () => {
      expect((await listRooms(online, ADMIN, null)).map((r) => r.room)).to.include.members(['desk', 'mixed']);
      expect((await listRooms(online, as('alice@localhost'), null)).map((r) => r.room)).to.deep.equal(['desk']);
      expect((await listRooms(online, ADMIN, null, { category: 'Ops' })).map((r) => r.room)).to.deep.equal(['mixed']);
      expect((await listRooms(online, ADMIN, null, { member: 'bob@localhost' })).map((r) => r.room)).to.deep.equal(['mixed']);
      expect((await listRooms(online, ADMIN, null, { filter: 'trad*' })).map((r) => r.room)).to.deep.equal(['desk']);
    });

    it('invite new members when invitations are on, and list them by the user IQs', async () => {
      const bob = await kit.client('bob@localhost');
      const u = await updateRoom(online, as('alice@localhost'), null, 'desk', { members: { add: ['bob@localhost'] } });
      expect(u.invited).to.equal(1);
      const msg = await bob.next((el) => el.name === 'message' && el.getChild('x', 'jabber:x:conference') !== undefined);
      expect(msg.attrs.from).to.equal(`desk@${SERVICE}`);
      expect(msg.getChild('x', 'jabber:x:conference')!.attrs.jid).to.equal(`desk@${SERVICE}`);
      // Invitations off in the room: nothing more.
      await updateRoom(online, ADMIN, null, 'desk', { invitations: 'off', members: { add: ['ann@localhost'] } }).then((r) => expect(r.invited).to.equal(0));

      const invs = await bob.iq('get', SERVICE, new Element('query', { xmlns: INVITATIONS_NS, after: '0' }));
      expect(invs.attrs.type).to.equal('result');
      const items = invs.getChild('query', INVITATIONS_NS)!.getChildren('invitation');
      // Invited to mixed when it was created with him in it, then to desk.
      expect(items.map((i) => i.attrs.room)).to.deep.equal([`mixed@${SERVICE}`, `desk@${SERVICE}`]);
      const later = await bob.iq('get', SERVICE, new Element('query', { xmlns: INVITATIONS_NS, after: items[0]!.attrs.id! }));
      expect(later.getChild('query', INVITATIONS_NS)!.getChildren('invitation').map((i) => i.attrs.room)).to.deep.equal([`desk@${SERVICE}`]);
      const none = await bob.iq('get', SERVICE, new Element('query', { xmlns: INVITATIONS_NS, after: items[1]!.attrs.id! }));
      expect(none.getChild('query', INVITATIONS_NS)!.getChildren('invitation')).to.have.length(0);

      const assoc = await bob.iq('get', SERVICE, new Element('query', { xmlns: ASSOC_NS }));
      const rooms = assoc.getChild('query', ASSOC_NS)!.getChildren('room');
      expect(rooms.map((r) => [r.attrs.jid, r.attrs.member, r.attrs.manager])).to.deep.equal([[`desk@${SERVICE}`, 'true', 'false'], [`mixed@${SERVICE}`, 'true', 'false']]);
      expect(assoc.getChild('query', ASSOC_NS)!.getChildren('category')).to.have.length(0);
      const alice = await kit.client('alice@localhost');
      const mine = await alice.iq('get', SERVICE, new Element('query', { xmlns: ASSOC_NS }));
      expect(mine.getChild('query', ASSOC_NS)!.getChildren('category').map((c) => c.attrs.name)).to.deep.equal(['Finance', 'Ops']);
      expect(mine.getChild('query', ASSOC_NS)!.getChildren('room').find((r) => r.attrs.jid === `desk@${SERVICE}`)!.attrs.manager).to.equal('true');
    });

    it('leave a non-empty category in place, and delete rooms for admins', async () => {
      await refused(deleteCategory(online, ADMIN, null, 'Ops'), 'conflict', /category Ops still has rooms/);
      await deleteRoom(online, ADMIN, null, 'mixed');
      expect(chatModel(kit.server).forService(SERVICE)!.room('mixed')).to.equal(undefined);
      await refused(deleteRoom(online, ADMIN, null, 'mixed'), 'item-not-found', /no room mixed/);
    });
  });

  describe('directory', () => {
    it('refuses group cycles and unknown nested groups', async () => {
      await createGroup(online, ADMIN, 'desks', { members: { replace: ['group:traders'] } });
      await refused(updateGroup(online, ADMIN, 'traders', { members: { add: ['group:desks'] } }), 'not-acceptable', /already contains group:traders/);
      await refused(updateGroup(online, ADMIN, 'traders', { members: { add: ['group:traders'] } }), 'not-acceptable', /cannot contain itself/);
      await refused(updateGroup(online, ADMIN, 'traders', { members: { add: ['group:ghost'] } }), 'item-not-found', /principal not provisioned: group:ghost/);
      await refused(updateGroup(online, ADMIN, 'traders', { members: { add: ['ou:/corp'] } }), 'bad-request', /users and groups only/);
      await refused(createGroup(online, ADMIN, 'desks'), 'conflict', /already exists/);
      await deleteGroup(online, ADMIN, 'desks');
      await refused(deleteGroup(online, ADMIN, 'desks'), 'item-not-found', /principal not provisioned: group:desks/);
    });

    it('keeps org units with users, and refuses unknown ones', async () => {
      expect(await addOrgUnit(online, ADMIN, '/Corp/EMEA')).to.equal(true);
      expect((await listOrgUnits(online, ADMIN)).map((u) => u.path), 'a unit\'s ancestors are made with it').to.include.members(['/corp', '/corp/emea']);
      await refused(setUserOrgUnit(online, ADMIN, 'eve@localhost', '/corp/apac'), 'item-not-found', /principal not provisioned: ou:\/corp\/apac/);
      await setUserOrgUnit(online, ADMIN, 'eve@localhost', '/corp/emea');
      await refused(deleteOrgUnit(online, ADMIN, '/corp/emea'), 'conflict', /still has users/);
      await refused(deleteOrgUnit(online, as('eve@localhost'), '/corp/emea'), 'forbidden', /only administrators/);
      expect(chatModel(kit.server).directory.peek('eve@localhost') ?? (await chatModel(kit.server).subjectOf('eve@localhost')).principals).to.include('ou:/corp/emea');
      await setUserOrgUnit(online, ADMIN, 'eve@localhost', null);
      await deleteOrgUnit(online, ADMIN, '/corp/emea');
    });
  });

  describe('add-ins, settings, policies', () => {
    it('take http(s) add-ins, and keep one rooms show unless forced', async () => {
      await refused(createAddin(online, ADMIN, null, 'wiki', 'ftp://x'), 'not-acceptable', /http or https/);
      await refused(createAddin(online, ADMIN, null, 'wiki', 'not a url'), 'bad-request', /not a URL/);
      await createAddin(online, ADMIN, null, 'wiki', 'https://wiki.example/');
      await updateRoom(online, ADMIN, null, 'desk', { addin: 'WIKI' });
      await refused(updateRoom(online, ADMIN, null, 'desk', { addin: 'none-such' }), 'item-not-found', /no add-in none-such/);
      await refused(deleteAddin(online, ADMIN, null, 'wiki'), 'conflict', /add-in wiki is used by 1 room\(s\) \(desk\)/);
      expect(await deleteAddin(online, ADMIN, null, 'wiki', true)).to.deep.equal({ rooms: ['desk'] });
      expect(chatModel(kit.server).forService(SERVICE)!.room('desk')!.addin).to.equal(null);
    });

    it('check the service settings', async () => {
      await refused(setServiceSettings(online, ADMIN, null, { defaultHistory: 0 }), 'not-acceptable', /defaultHistory must be a whole number from 1 to 500/);
      await refused(setServiceSettings(online, ADMIN, null, { defaultHistory: 501 }), 'not-acceptable', /from 1 to 500/);
      await refused(setServiceSettings(online, ADMIN, null, { maxFileSizeKb: 0 }), 'not-acceptable', /maxFileSizeKb must be a whole number of at least 1/);
      await refused(setServiceSettings(online, ADMIN, null, { participantUpdateLimit: 0 }), 'not-acceptable', /at least 1/);
      await refused(setServiceSettings(online, ADMIN, null, { roomManagementUrl: 'gopher://x' }), 'not-acceptable', /http or https/);
      await refused(setServiceSettings(online, as('alice@localhost'), null, { defaultHistory: 5 }), 'forbidden', /only administrators/);
      const s = await setServiceSettings(online, ADMIN, null, { defaultHistory: 50, roomManagementUrl: 'https://rooms.example/' });
      expect(s).to.include({ defaultHistory: 50, maxFileSizeKb: 20000, participantUpdateLimit: 75, roomManagementUrl: 'https://rooms.example/' });
      expect(chatModel(kit.server).forService(SERVICE)!.settings.defaultHistory).to.equal(50);
    });

    it('set policies for known groups and users', async () => {
      await refused(setPolicy(online, ADMIN, 'group', 'ghosts', false), 'item-not-found', /principal not provisioned: group:ghosts/);
      await refused(setPolicy(online, ADMIN, 'user', 'group:x', false), 'bad-request', /not a user/);
      await setPolicy(online, ADMIN, 'user', 'ann@localhost', false);
      expect((await chatModel(kit.server).subjectOf('ann@localhost')).enabled).to.equal(false);
      expect(await getPolicies(online, ADMIN)).to.deep.include({ scope: 'user', subject: 'ann@localhost', enabled: false });
      await setPolicy(online, ADMIN, 'user', 'ann@localhost', null);
      expect((await chatModel(kit.server).subjectOf('ann@localhost')).enabled).to.equal(true);
    });
  });

  describe('the same refusals with and without a running server', () => {
    const cases: [string, (c: ChatOpContext) => Promise<unknown>, string, RegExp][] = [
      ['a category by a non-admin', (c) => createCategory(c, as('alice@localhost'), null, { name: 'X' }), 'forbidden', /^only administrators create categories$/],
      ['an unknown group', (c) => updateCategory(c, LOCAL, null, 'Finance', { allowed: { add: ['group:ghost'] } }), 'item-not-found', /^principal not provisioned: group:ghost$/],
      ['a creator outside the scope', (c) => updateCategory(c, LOCAL, null, 'Finance', { creators: { add: ['tom@localhost'] } }), 'not-acceptable', /^tom@localhost is outside the scope of category Finance \(creator: denied\)$/],
      ['a taken category name', (c) => createCategory(c, LOCAL, null, { name: 'OPS' }), 'conflict', /OPS is already used by a category/],
      ['a room by a non-creator', (c) => createRoom(c, as('bob@localhost'), null, 'r1', { category: 'Finance' }), 'forbidden', /^you may not create rooms in category Finance$/],
      ['a room named as a category', (c) => createRoom(c, LOCAL, null, 'r1', { category: 'Finance', name: 'finance' }), 'conflict', /finance is already used by a category/],
      ['a member outside the scope', (c) => updateRoom(c, LOCAL, null, 'desk', { members: { add: ['group:traders'] } }), 'not-acceptable', /^group:traders is outside the scope of category Finance \(member: denied\)$/],
      ['presenters of a normal room', (c) => updateRoom(c, LOCAL, null, 'desk', { presenters: { add: ['alice@localhost'] } }), 'not-acceptable', /^only auditorium rooms have presenters$/],
      ['a change by a non-manager', (c) => updateRoom(c, as('ann@localhost'), null, 'desk', { name: 'x' }), 'forbidden', /^you do not manage desk@conference.localhost$/],
      ['a move by a manager who may not create there', (c) => updateRoom(c, as('alice@localhost'), null, 'desk', { category: 'Nowhere' }), 'item-not-found', /^no category Nowhere in conference.localhost$/],
      ['a delete by a manager', (c) => deleteRoom(c, as('alice@localhost'), null, 'desk'), 'forbidden', /^only administrators delete rooms$/],
      ['a name too long', (c) => updateRoom(c, LOCAL, null, 'desk', { name: 'n'.repeat(257) }), 'not-acceptable', /longer than 256 characters/],
      ['an unknown room', (c) => updateRoom(c, LOCAL, null, 'ghost', { name: 'x' }), 'item-not-found', /^no room ghost@conference.localhost in any category$/],
      ['an unknown service', (c) => updateRoom(c, LOCAL, null, 'desk@chat.elsewhere', { name: 'x' }), 'item-not-found', /chat.elsewhere is not a MUC service/],
      ['a non-http add-in', (c) => createAddin(c, LOCAL, null, 'a', 'mailto:x@y'), 'not-acceptable', /an add-in URL is http or https/],
      ['a history out of range', (c) => setServiceSettings(c, LOCAL, null, { defaultHistory: 1000 }), 'not-acceptable', /from 1 to 500/],
      ['an unknown org unit', (c) => setUserOrgUnit(c, LOCAL, 'x@localhost', '/nowhere'), 'item-not-found', /^principal not provisioned: ou:\/nowhere$/],
      ['a policy for an unknown group', (c) => setPolicy(c, LOCAL, 'group', 'ghost', true), 'item-not-found', /^principal not provisioned: group:ghost$/],
    ];
    for (const [what, run, condition, text] of cases) {
      it(`refuses ${what}`, async () => {
        await refused(run(online), condition, text);
        await refused(run({ ...online, model: null, route: undefined }), condition, text);
      });
    }
  });

  describe('without a running server', () => {
    it('checks the same rules against a model built from the stores', async () => {
      const offline: ChatOpContext = { ...online, model: null, route: undefined };
      await createCategory(offline, LOCAL, null, { name: 'Offline', allowed: { replace: ['group:analysts'] }, invitations: true });
      await refused(createRoom(offline, LOCAL, null, 'off1', { category: 'Offline', members: { replace: ['bob@localhost'] } }), 'not-acceptable',
        /^bob@localhost is outside the scope of category Offline/);
      const r = await createRoom(offline, LOCAL, null, 'off1', { category: 'Offline', members: { replace: ['ann@localhost'] } });
      expect(r.members).to.deep.equal(['ann@localhost']);
      // Stored, not sent: ann's invitation is there for the invitations IQ.
      expect((await kit.server.stores.chat.invitations('ann@localhost', 0, 10)).map((i) => i.room)).to.include('off1');
      await refused(createRoom(offline, as('bob@localhost'), null, 'off2', { category: 'Offline' }), 'forbidden', /may not create/);
      expect(await kit.server.stores.chat.room(SERVICE, 'off1')).to.include({ category: 'Offline' });
    });
  });
});
