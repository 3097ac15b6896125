// Live changes of the persistent-chat model, enforced on rooms with people in them: a group edited
// or deleted while its member is in the room, a user moved to another org unit, a nested group taken
// out of its parent, a manager taken off the list, a deny added later, a room moved to another
// category, made closed (322) or an auditorium (roles), disabled and enabled (through the CLI and
// XEP-0050) or deleted, a member added to a room that inherits its category's scope, the policy
// turned off for a user, a group and everyone. First on one server, then on two nodes sharing
// PostgreSQL and Redis, where the change is made through node a (its admin socket, or an admin's
// XMPP client there) while the users are connected to node b and the rooms are held by b (created
// through b's socket, which only writes the database; the first stanza for each room, a join,
// reaches b, which takes the room's lease); and once by a CLI beside no node at all.
import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, login, randomName, useTestDatabase, xml, type RunningServer, type LoggedIn } from './harness.js';
import {
  PchatCli, SERVICE, bare, roomJid, join, post, leave, listedRooms, statusCodes, reasonOf, removal, noRemoval,
  eventually, adhoc, jsonOf, discoFields, type CliTarget,
} from './pchat-kit.js';

const REDIS_URL = process.env.CONFORMANCE_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Scenarios running at once. */
const AT_ONCE = 3;

/** One account per part each scenario plays, so scenarios never touch each other's rights. */
const USERS = ['root', 'g1', 'g2', 'd1', 'd2', 'v1', 'v2', 'x1', 'x2', 'p1', 'p2', 'a1', 'k1', 'k2', 'r1', 'h1', 'h2', 'o1', 'o2', 'q1', 'q2', 't1', 't2', 'n1', 'n2', 'n3', 'm1', 'm2'];
const ADMINS = ['root@localhost'];

interface Deployment {
  /** Where the changes are made (node a). */
  change: PchatCli;
  /** Where rooms are created and users connect (node b; the same server on one node). */
  setup: PchatCli;
  userPort: number;
  /** Where an admin's XMPP client connects to make a change (node a). */
  changePort: number;
}

/** Removal of an occupant: the self-presence is unavailable, carries one of the codes and a reason. */
function expectRemoved(p: Awaited<ReturnType<typeof removal>>, codes: number[], what: string): void {
  const got = statusCodes(p);
  expect(got.some((c) => codes.includes(c)), `${what}: status codes ${got.join(',')} (want one of ${codes.join(',')})`).to.equal(true);
  expect(reasonOf(p), `${what}: a reason`).to.be.a('string').and.not.equal('');
}

/** The object in a listing that names the room (by localpart or JID). */
function findEntry(v: unknown, room: string): unknown {
  if (Array.isArray(v)) {
    for (const x of v) {
      const hit = findEntry(x, room);
      if (hit) return hit;
    }
    return undefined;
  }
  if (v && typeof v === 'object') {
    if (Object.values(v).some((x) => x === room || x === roomJid(room))) return v;
    return findEntry(Object.values(v), room);
  }
  return undefined;
}

function liveChanges(deploy: () => Deployment, run: { id: string }) {
  const clients: LoggedIn[] = [];
  const on = async (user: string) => {
    const c = await login(deploy().userPort, user, 'pw');
    clients.push(c);
    return c;
  };
  const name = (base: string) => `${base}-${run.id}`;
  /**
   * The scenarios run side by side (each has its own accounts, category and room, so they also show
   * that a change leaves other rooms alone); one marked alone runs after all the others. Each is a test.
   */
  const scenarios: { title: string; fn: () => Promise<void>; alone: boolean }[] = [];
  const scenario = (title: string, fn: () => Promise<void>, alone = false) => { scenarios.push({ title, fn, alone }); };
  const results = new Map<string, Promise<void>>();
  before(() => {
    // A few at a time: a burst of logins and CLI processes on two cores stalls stream opening (2 s).
    const waiting = scenarios.filter((x) => !x.alone);
    const slots: Promise<void>[] = [];
    const together = waiting.map((x, i) => {
      const p = (i < AT_ONCE ? Promise.resolve() : slots[i - AT_ONCE]!.catch(() => undefined)).then(() => x.fn());
      slots.push(p);
      results.set(x.title, p);
      return p;
    });
    let chain: Promise<unknown> = Promise.allSettled(together);
    for (const x of scenarios.filter((y) => y.alone)) {
      const p = chain.then(() => x.fn());
      results.set(x.title, p);
      chain = p.catch(() => undefined);
    }
    for (const p of results.values()) p.catch(() => undefined); // reported by its test
  });
  after(async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop()));
  });

  scenario('a group edited while its member is in the room: removed (321, reason), refused, then let in again', async () => {
    const { change, setup } = deploy();
    const cat = name('grp');
    const team = name('team');
    const room = name('l-group');
    await setup.categoryAdd(cat, { allowed: ['domain:localhost'] });
    await setup.groupAdd(team, [bare('g1')]);
    await setup.roomAdd(room, { category: cat, privacy: 'closed', members: [`group:${team}`, bare('g2')] });
    const [g1, g2] = await Promise.all([on('g1'), on('g2')]);
    expect(await join(g1, roomJid(room), 'g1')).to.equal('ok');
    expect(await join(g2, roomJid(room), 'g2')).to.equal('ok');
    await change.groupMembers(team, `-${bare('g1')}`);
    expectRemoved(await removal(g1, roomJid(room), 'g1'), [321], 'g1 removed from the group');
    const seen = await removal(g2, roomJid(room), 'g1');
    expect(statusCodes(seen)).to.include(321);
    await noRemoval(g2, roomJid(room), 'g2');
    expect(await join(g1, roomJid(room), 'g1')).to.equal('registration-required');
    await change.groupMembers(team, `+${bare('g1')}`);
    await eventually(async () => expect(await join(g1, roomJid(room), 'g1')).to.equal('ok'));
  });

  scenario('a deny added later: the denied occupant is ejected with a reason, the others stay; joining is refused', async () => {
    const { change, setup } = deploy();
    const cat = name('deny');
    const room = name('l-deny');
    await setup.categoryAdd(cat, { allowed: ['domain:localhost'] });
    await setup.roomAdd(room, { category: cat, privacy: 'open' });
    const [d1, d2] = await Promise.all([on('d1'), on('d2')]);
    expect(await join(d1, roomJid(room), 'd1')).to.equal('ok');
    expect(await join(d2, roomJid(room), 'd2')).to.equal('ok');
    const r = await change.categorySet(cat, { denied: `+${bare('d1')}` });
    expect(r.code, r.stderr).to.equal(0);
    // Denied is an outcast (301) or a lost membership (321); either with a reason.
    expectRemoved(await removal(d1, roomJid(room), 'd1'), [301, 321, 322], 'd1 denied');
    await noRemoval(d2, roomJid(room), 'd2');
    expect(await post(d2, roomJid(room), 'still here')).to.equal('ok');
    // An outcast of a room whose existence is not secret: forbidden.
    expect(await join(d1, roomJid(room), 'd1')).to.equal('forbidden');
  });

  scenario('a room moved to another category: who is outside the new scope is dropped and ejected, the others stay', async () => {
    const { change, setup } = deploy();
    const from = name('from');
    const to = name('to');
    const ou = `/keep-${run.id}`;
    const room = name('l-move');
    await setup.ouAdd(ou);
    await setup.userOu('v2', ou);
    await setup.categoryAdd(from, { allowed: ['domain:localhost'] });
    await setup.categoryAdd(to, { allowed: [`ou:${ou}`] });
    await setup.roomAdd(room, { category: from, privacy: 'closed', members: [bare('v1'), bare('v2')] });
    const [v1, v2] = await Promise.all([on('v1'), on('v2')]);
    expect(await join(v1, roomJid(room), 'v1')).to.equal('ok');
    expect(await join(v2, roomJid(room), 'v2')).to.equal('ok');
    const r = await change.roomSet(room, { category: to });
    expect(r.code, r.stderr).to.equal(0);
    expectRemoved(await removal(v1, roomJid(room), 'v1'), [321, 322], 'v1 outside the new scope');
    await noRemoval(v2, roomJid(room), 'v2');
    expect(await post(v2, roomJid(room), 'moved with the room')).to.equal('ok');
    // Out of the closed room's new scope: it does not exist for v1.
    expect(await join(v1, roomJid(room), 'v1')).to.equal('item-not-found');
    // And v1 is no longer on its member list; v2 is.
    const entry = JSON.stringify(findEntry(jsonOf(await setup.roomList()), room) ?? null);
    expect(entry, 'the moved room in room list --json').to.include(bare('v2')).and.not.include(bare('v1'));
  });

  scenario('a room disabled: everyone ejected (332, reason), hidden, joins refused; enabled: joins work, history kept', async () => {
    const { change, setup } = deploy();
    const cat = name('dis');
    const room = name('l-dis');
    await setup.categoryAdd(cat, { allowed: ['domain:localhost'] });
    await setup.roomAdd(room, { category: cat, privacy: 'closed', members: [bare('x1'), bare('x2')] });
    const [x1, x2] = await Promise.all([on('x1'), on('x2')]);
    expect(await join(x1, roomJid(room), 'x1')).to.equal('ok');
    expect(await join(x2, roomJid(room), 'x2')).to.equal('ok');
    expect(await post(x1, roomJid(room), 'said before the room was disabled')).to.equal('ok');
    expect(await listedRooms(x2)).to.include(roomJid(room));
    await change.roomDisable(room);
    for (const [c, nick] of [[x1, 'x1'], [x2, 'x2']] as const) {
      expectRemoved(await removal(c, roomJid(room), nick), [332, 307], `${nick} when the room was disabled`);
    }
    await eventually(async () => expect(await listedRooms(x2)).to.not.include(roomJid(room)));
    expect(await join(x1, roomJid(room), 'x1')).to.equal('forbidden');
    await change.roomEnable(room);
    await eventually(async () => expect(await join(x1, roomJid(room), 'x1')).to.equal('ok'));
    await leave(x1, roomJid(room), 'x1');
    // History kept: a newcomer's join history has the message from before.
    expect(await join(x2, roomJid(room), 'x2', { history: 20 })).to.equal('ok');
    await x2.waitFor((el) => el.is('message') && el.getChildText('body') === 'said before the room was disabled' && el.getChild('delay', 'urn:xmpp:delay') !== undefined);
    expect(await listedRooms(x2)).to.include(roomJid(room));
  });

  scenario('a member added to a room that inherits its category\'s scope: nobody who was in loses access', async () => {
    const { change, setup } = deploy();
    const cat = name('inh');
    const room = name('l-inh');
    await setup.categoryAdd(cat, { allowed: ['domain:localhost'] });
    await setup.roomAdd(room, { category: cat, privacy: 'closed' });
    const h1 = await on('h1');
    expect(await join(h1, roomJid(room), 'h1')).to.equal('ok');
    const r = await change.roomSet(room, { members: `+${bare('h2')}` });
    expect(r.code, r.stderr).to.equal(0);
    // Adding to "everyone in scope" leaves everyone in scope a member.
    await noRemoval(h1, roomJid(room), 'h1', 1500);
  });

  scenario('an open room made closed: an occupant who is no member leaves with 322 and a reason, members stay', async () => {
    const { change, setup } = deploy();
    const cat = name('priv');
    const room = name('l-priv');
    await setup.categoryAdd(cat, { allowed: ['domain:localhost'] });
    await setup.roomAdd(room, { category: cat, privacy: 'open' });
    const [q1, q2] = await Promise.all([on('q1'), on('q2')]);
    expect(await join(q1, roomJid(room), 'q1')).to.equal('ok');
    expect(await join(q2, roomJid(room), 'q2')).to.equal('ok');
    const r = await change.roomSet(room, { privacy: 'closed', members: [bare('q2')] });
    expect(r.code, r.stderr).to.equal(0);
    expectRemoved(await removal(q1, roomJid(room), 'q1'), [322], 'q1 when the room became members-only');
    await noRemoval(q2, roomJid(room), 'q2');
    expect(await join(q1, roomJid(room), 'q1')).to.equal('registration-required');
  });

  scenario('a normal room made an auditorium: members become visitors and may not post, the presenter speaks', async () => {
    const { change, setup } = deploy();
    const cat = name('aud');
    const room = name('l-aud');
    await setup.categoryAdd(cat, { allowed: ['domain:localhost'] });
    await setup.roomAdd(room, { category: cat, privacy: 'closed', members: [bare('t1'), bare('t2')] });
    const [t1, t2] = await Promise.all([on('t1'), on('t2')]);
    expect(await join(t1, roomJid(room), 't1')).to.equal('ok');
    expect(await join(t2, roomJid(room), 't2')).to.equal('ok');
    expect(await post(t1, roomJid(room), 'before the talk')).to.equal('ok');
    const r = await change.roomSet(room, { type: 'auditorium', presenters: [bare('t2')] });
    expect(r.code, r.stderr).to.equal(0);
    const own = `${roomJid(room)}/t1`;
    await t1.waitFor((el) => el.is('presence') && el.attrs.from === own && el.attrs.type === undefined &&
      el.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChild('item')?.attrs.role === 'visitor');
    await noRemoval(t1, roomJid(room), 't1');
    expect(await post(t1, roomJid(room), 'from the audience')).to.equal('forbidden');
    expect(await post(t2, roomJid(room), 'from the stage')).to.equal('ok');
  });

  scenario('a user moved to another org unit, and a nested group taken out of its parent: each loses access (321)', async () => {
    const { change, setup } = deploy();
    const cat = name('dir');
    const room = name('l-dir');
    const [unit, other, inner, outer] = [`/dir-${run.id}/team`, `/else-${run.id}`, name('inner'), name('outer')];
    await setup.ouAdd(unit);
    await setup.ouAdd(other);
    await setup.userOu('n1', unit);
    await setup.groupAdd(inner, [bare('n2')]);
    await setup.groupAdd(outer, [`group:${inner}`]);
    await setup.categoryAdd(cat, { allowed: ['domain:localhost'] });
    await setup.roomAdd(room, { category: cat, privacy: 'closed', members: [`ou:/dir-${run.id}`, `group:${outer}`, bare('n3')] });
    const [n1, n2, n3] = await Promise.all([on('n1'), on('n2'), on('n3')]);
    for (const [c, nick] of [[n1, 'n1'], [n2, 'n2'], [n3, 'n3']] as const) expect(await join(c, roomJid(room), nick), nick).to.equal('ok');
    await change.userOu('n1', other);
    expectRemoved(await removal(n1, roomJid(room), 'n1'), [321], 'n1 moved out of the org unit');
    await change.groupMembers(outer, `-group:${inner}`);
    expectRemoved(await removal(n2, roomJid(room), 'n2'), [321], 'n2 whose group left the parent group');
    await noRemoval(n3, roomJid(room), 'n3');
  });

  scenario('a manager taken off the list while in the room: everyone sees them become a member', async () => {
    const { change, setup } = deploy();
    const cat = name('mgr');
    const room = name('l-mgr');
    await setup.categoryAdd(cat, { allowed: ['domain:localhost'] });
    await setup.roomAdd(room, { category: cat, privacy: 'closed', members: [bare('m1'), bare('m2')], managers: [bare('m1')] });
    const [m1, m2] = await Promise.all([on('m1'), on('m2')]);
    expect(await join(m1, roomJid(room), 'm1')).to.equal('ok');
    expect(await join(m2, roomJid(room), 'm2')).to.equal('ok');
    const r = await change.roomSet(room, { managers: '' });
    expect(r.code, r.stderr).to.equal(0);
    const from = `${roomJid(room)}/m1`;
    const demoted = (el: Parameters<Parameters<LoggedIn['waitFor']>[0]>[0]) => el.is('presence') && el.attrs.from === from && el.attrs.type === undefined &&
      el.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChild('item')?.attrs.affiliation === 'member' &&
      el.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChild('item')?.attrs.role === 'participant';
    await m2.waitFor(demoted);
    await m1.waitFor(demoted);
    await noRemoval(m1, roomJid(room), 'm1');
  });

  scenario('a group deleted while its member is in the room: removed (321, reason)', async () => {
    const { change, setup } = deploy();
    const cat = name('gdel');
    const grp = name('gone');
    const room = name('l-gdel');
    await setup.categoryAdd(cat, { allowed: ['domain:localhost'] });
    await setup.groupAdd(grp, [bare('k1')]);
    await setup.roomAdd(room, { category: cat, privacy: 'closed', members: [`group:${grp}`, bare('k2')] });
    const [k1, k2] = await Promise.all([on('k1'), on('k2')]);
    expect(await join(k1, roomJid(room), 'k1')).to.equal('ok');
    expect(await join(k2, roomJid(room), 'k2')).to.equal('ok');
    await change.groupDelete(grp);
    expectRemoved(await removal(k1, roomJid(room), 'k1'), [321], 'k1 whose group was deleted');
    await noRemoval(k2, roomJid(room), 'k2');
    expect(await join(k1, roomJid(room), 'k1')).to.equal('registration-required');
  });

  scenario('a room deleted while occupied: its occupants leave with the reason, and it is gone', async () => {
    const { change, setup } = deploy();
    const cat = name('rdel');
    const room = name('l-rdel');
    await setup.categoryAdd(cat, { allowed: ['domain:localhost'] });
    await setup.roomAdd(room, { category: cat, privacy: 'open' });
    const r1 = await on('r1');
    expect(await join(r1, roomJid(room), 'r1')).to.equal('ok');
    expect((await change.categoryDelete(cat)).code, 'a category with a room is not deleted').to.equal(1);
    await change.roomDelete(room, 'closing down');
    const gone = await removal(r1, roomJid(room), 'r1');
    expect(gone.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChild('destroy')?.getChildText('reason')).to.equal('closing down');
    await eventually(async () => expect(await listedRooms(r1)).to.not.include(roomJid(room)));
    const r = await change.categoryDelete(cat);
    expect(r.code, `category delete once empty: ${r.stderr}`).to.equal(0);
  });

  scenario('the policy turned off for a user: ejected with a reason and refused; back on: joins again', async () => {
    const { change, setup } = deploy();
    const cat = name('pol');
    const room = name('l-pol');
    await setup.categoryAdd(cat, { allowed: ['domain:localhost'] });
    await setup.roomAdd(room, { category: cat, privacy: 'open' });
    const [p1, p2] = await Promise.all([on('p1'), on('p2')]);
    expect(await join(p1, roomJid(room), 'p1')).to.equal('ok');
    expect(await join(p2, roomJid(room), 'p2')).to.equal('ok');
    await change.policySet({ user: 'p1' }, false);
    expectRemoved(await removal(p1, roomJid(room), 'p1'), [321, 322, 307, 332], 'p1 with the policy off');
    await noRemoval(p2, roomJid(room), 'p2');
    expect(await join(p1, roomJid(room), 'p1')).to.equal('item-not-found');
    await change.policySet({ user: 'p1' }, null);
    await eventually(async () => expect(await join(p1, roomJid(room), 'p1')).to.equal('ok'));
  });

  scenario('the policy turned off for a group, then globally: its members ejected; a user\'s own entry beats both', async () => {
    const { change, setup } = deploy();
    const cat = name('gpol');
    const room = name('l-gpol');
    const grp = name('quiet');
    await setup.categoryAdd(cat, { allowed: ['domain:localhost'] });
    await setup.roomAdd(room, { category: cat, privacy: 'open' });
    await setup.groupAdd(grp, [bare('p2')]);
    const [p1, p2] = await Promise.all([on('p1'), on('p2')]);
    expect(await join(p1, roomJid(room), 'p1')).to.equal('ok');
    expect(await join(p2, roomJid(room), 'p2')).to.equal('ok');
    await change.policySet({ group: grp }, false);
    expectRemoved(await removal(p2, roomJid(room), 'p2'), [321, 322, 307, 332], 'p2 whose group has the policy off');
    await noRemoval(p1, roomJid(room), 'p1');
    await change.policySet({ user: 'p2' }, true);
    await eventually(async () => expect(await join(p2, roomJid(room), 'p2')).to.equal('ok'));
    try {
      await change.policySet('global', false);
      expectRemoved(await removal(p1, roomJid(room), 'p1'), [321, 322, 307, 332], 'p1 with the policy off globally');
      await noRemoval(p2, roomJid(room), 'p2');
    } finally {
      await change.policySet('global', null);
      await change.policySet({ user: 'p2' }, null);
      await change.policySet({ group: grp }, null);
    }
    await eventually(async () => expect(await join(p1, roomJid(room), 'p1')).to.equal('ok'));
  }, true);

  scenario('disable and enable through XEP-0050 on the MUC service (an admin connected where the change is made)', async () => {
    const { setup, changePort } = deploy();
    const cat = name('adhoc');
    const room = name('l-adhoc');
    await setup.categoryAdd(cat, { allowed: ['domain:localhost'] });
    await setup.roomAdd(room, { category: cat, privacy: 'open' });
    const root = await login(changePort, 'root', 'pw');
    clients.push(root);
    const a1 = await on('a1');
    expect(await join(a1, roomJid(room), 'a1')).to.equal('ok');
    const off = await adhoc(root, SERVICE, 'room-disable', { room: [room] });
    expect(off.status).to.equal('completed');
    expectRemoved(await removal(a1, roomJid(room), 'a1'), [332, 307], 'a1 when the room was disabled');
    expect(await join(a1, roomJid(room), 'a1')).to.equal('forbidden');
    const on2 = await adhoc(root, SERVICE, 'room-enable', { room: [room] });
    expect(on2.status).to.equal('completed');
    await eventually(async () => expect(await join(a1, roomJid(room), 'a1')).to.equal('ok'));
  });

  for (const x of scenarios) it(x.title, () => results.get(x.title)!);
}

describe('conformance: persistent-chat live changes', function () {
  this.timeout(60000);
  const timings: Record<string, number> = {};

  describe('on one server', () => {
    let server: RunningServer;
    let cli: PchatCli;
    const run = { id: 'one' };
    let t0 = 0;
    before(async function () {
      t0 = Date.now();
      this.timeout(60000);
      server = await startServer({ users: Object.fromEntries(USERS.map((u) => [u, 'pw'])), admins: ADMINS });
      cli = new PchatCli({ dataDir: server.dataDir });
    });
    after(async () => {
      await server?.stop();
      timings.oneServer = Date.now() - t0;
    });

    liveChanges(() => ({ change: cli, setup: cli, userPort: server.ports.c2s, changePort: server.ports.c2s }), run);

    it('service settings, add-ins and directory deletes, through the CLI and XEP-0050, show over XMPP', async () => {
      const root = await login(server.ports.c2s, 'root', 'pw');
      const h1 = await login(server.ports.c2s, 'h1', 'pw');
      const h2 = await login(server.ports.c2s, 'h2', 'pw');
      try {
        // The service's settings: its disco#info form, set through the CLI, then through XEP-0050.
        await cli.serviceSet({ 'default-history': '3' });
        await eventually(async () => expect((await discoFields(h1, SERVICE)).get('default-history')).to.deep.equal(['3']));
        const viaAdhoc = await adhoc(root, SERVICE, 'service-set', { 'participant-update-limit': ['40'] });
        expect(viaAdhoc.status).to.equal('completed');
        expect((await discoFields(h1, SERVICE)).get('participant-update-limit')).to.deep.equal(['40']);
        expect(JSON.stringify(jsonOf(await cli.serviceGet()))).to.include('40');
        // A joining user gets the default history: 3 of 5 messages.
        await cli.categoryAdd('ops', { allowed: ['domain:localhost'] });
        await cli.addinAdd('board', 'https://board.example/room');
        await cli.roomAdd('l-ops', { category: 'ops', privacy: 'open', addin: 'board' });
        expect(await join(h1, roomJid('l-ops'), 'h1')).to.equal('ok');
        for (let i = 1; i <= 5; i++) expect(await post(h1, roomJid('l-ops'), `m${i}`)).to.equal('ok');
        await h2.xmpp.send(xml('presence', { to: `${roomJid('l-ops')}/h2` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' })));
        await h2.waitFor((el) => el.is('presence') && el.attrs.from === `${roomJid('l-ops')}/h2` && statusCodes(el).includes(110));
        await h2.waitFor((el) => el.is('message') && el.getChild('subject') !== undefined);
        const history = h2.received.filter((el) => el.is('message') && el.getChild('delay', 'urn:xmpp:delay') !== undefined).map((el) => el.getChildText('body'));
        expect(history).to.deep.equal(['m3', 'm4', 'm5']);
        // The add-in: in the room's disco#info.
        const info = await discoFields(h1, roomJid('l-ops'));
        expect(info.get('x-perch#addin')).to.deep.equal(['board']);
        expect(info.get('x-perch#addin-url')).to.deep.equal(['https://board.example/room']);
        // Org units: not deleted while someone sits in one; deleted once empty.
        await cli.ouAdd('/ops/team');
        await cli.userOu('h2', '/ops/team');
        expect((await cli.ouDelete('/ops')).code, 'an org unit with a user below is not deleted').to.equal(1);
        await cli.userOu('h2', null);
        const del = await cli.ouDelete('/ops/team');
        expect(del.code, del.stderr).to.equal(0);
        expect(JSON.stringify(jsonOf(await cli.ouList()))).to.not.include('/ops/team');
      } finally {
        await Promise.all([root.stop(), h1.stop(), h2.stop()]);
      }
    });

  });

  describe('on two nodes (PostgreSQL + Redis): changed through node a, enforced on node b', () => {
    const db = useTestDatabase('perch_pchat_live_');
    let nodeA: RunningServer;
    let nodeB: RunningServer;
    let viaA: PchatCli;
    let viaB: PchatCli;
    const run = { id: 'two' };
    let t0 = 0;
    before(async function () {
      t0 = Date.now();
      this.timeout(90000);
      const users = Object.fromEntries(USERS.map((u) => [u, 'pw']));
      nodeA = await startServer({ databaseUrl: db.url, redisUrl: REDIS_URL, nodeId: randomName('pchat-a-'), users, admins: ADMINS });
      nodeB = await startServer({ databaseUrl: db.url, redisUrl: REDIS_URL, nodeId: randomName('pchat-b-'), users, skipUserCreation: true, admins: ADMINS });
      const target = (n: RunningServer): CliTarget => ({ dataDir: n.dataDir, databaseUrl: db.url });
      viaA = new PchatCli(target(nodeA));
      viaB = new PchatCli(target(nodeB));
    });
    after(async function () {
      this.timeout(60000);
      await Promise.all([nodeA?.stop(), nodeB?.stop()]);
      timings.twoNodes = Date.now() - t0;
      console.log(`      live-change timings (ms): ${JSON.stringify(timings)}`);
    });

    liveChanges(() => ({ change: viaA, setup: viaB, userPort: nodeB.ports.c2s, changePort: nodeA.ports.c2s }), run);

    it('a change made by the CLI beside no node (the database and Redis only) is enforced on node b', async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'perch-pchat-cli-'));
      const clients: LoggedIn[] = [];
      try {
        const config = path.join(dir, 'perch.yaml');
        await writeFile(config, `redisUrl: ${REDIS_URL}\n`);
        const remote = new PchatCli({ dataDir: dir, databaseUrl: db.url, config });
        await viaB.categoryAdd('far', { allowed: ['domain:localhost'] });
        await viaB.groupAdd('far-team', [bare('o1')]);
        await viaB.roomAdd('l-far', { category: 'far', privacy: 'closed', members: ['group:far-team', bare('o2')] });
        const [o1, o2] = await Promise.all(['o1', 'o2'].map((u) => login(nodeB.ports.c2s, u, 'pw')));
        clients.push(o1!, o2!);
        expect(await join(o1!, roomJid('l-far'), 'o1')).to.equal('ok');
        expect(await join(o2!, roomJid('l-far'), 'o2')).to.equal('ok');
        await remote.groupMembers('far-team', `-${bare('o1')}`);
        expectRemoved(await removal(o1!, roomJid('l-far'), 'o1'), [321], 'o1 removed from the group by a CLI beside no node');
        await noRemoval(o2!, roomJid('l-far'), 'o2');
      } finally {
        await Promise.all(clients.map((c) => c.stop()));
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
