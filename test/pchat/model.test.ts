// The in-memory model every node answers the rules from: principal sets through nested groups and
// org units, the policy precedence, and a change published on one node reaching another node's model
// (two models over one embedded database, their buses joined).
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPglite } from '../../storage/db-pglite.js';
import { migrate } from '../../storage/migrations.js';
import { createSqlStores } from '../../storage/sql-stores.js';
import type { DataStores, Db } from '../../storage/types.js';
import { ChatModel, type ChatChange } from '../../src/pchat/model.js';
import { canJoin } from '../../src/pchat/access.js';
import { Directory } from '../../src/pchat/directory.js';

const SERVICE = 'chat.corp.example';
const quiet = { warn() {}, error() {} };

describe('persistent-chat model', function () {
  let dir: string;
  let db: Db;
  let stores: DataStores;

  before(async function () {
    dir = await mkdtemp(join(tmpdir(), 'perch-model-'));
    db = await openPglite(dir);
    await migrate(db);
    stores = createSqlStores(db);
    const d = stores.directory;
    await d.putGroup('traders', '');
    await d.putGroup('desk-a', '');
    await d.putGroup('desk-a1', '');
    await d.editGroupMembers('traders', { add: ['group:desk-a'], remove: [] });
    await d.editGroupMembers('desk-a', { add: ['group:desk-a1'], remove: [] });
    await d.editGroupMembers('desk-a1', { add: ['tina@corp.example'], remove: [] });
    await d.putOrgUnit('/corp/emea/sales', '');
    await d.setUserOrgUnit('sam@corp.example', '/corp/emea/sales');
  });

  after(async function () {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  function model(nodeId: string, bus?: (c: ChatChange) => Promise<void>): ChatModel {
    return new ChatModel({ stores, isAdmin: (b) => b === 'root@corp.example', nodeId, broadcast: bus, log: quiet }, [SERVICE]);
  }

  it('covers a user by every group above its own, its org unit and the units above, and its domain', async function () {
    const m = model('a');
    await m.start();
    expect(m.subject('tina@corp.example')).to.equal(undefined);
    await m.ensureSubjects(['tina@corp.example', 'sam@corp.example']);
    expect([...m.subject('tina@corp.example')!.principals].sort()).to.deep.equal([
      'domain:corp.example', 'group:desk-a', 'group:desk-a1', 'group:traders', 'tina@corp.example',
    ]);
    expect([...m.subject('sam@corp.example')!.principals].sort()).to.deep.equal([
      'domain:corp.example', 'ou:/corp', 'ou:/corp/emea', 'ou:/corp/emea/sales', 'sam@corp.example',
    ]);
    expect(m.subject('sam@corp.example')!.admin).to.equal(false);
    expect((await m.subjectOf('root@corp.example')).admin).to.equal(true);
  });

  it('takes a user\'s own policy over their groups\', and their groups\' over the global one', async function () {
    const m = model('a');
    await m.start();
    await m.ensureSubjects(['tina@corp.example', 'sam@corp.example']);
    expect(m.subject('tina@corp.example')!.enabled).to.equal(true);
    await stores.chat.setPolicy('global', '', false);
    await stores.chat.setPolicy('group', 'traders', true);
    await m.publish({ kind: 'policy' });
    expect(m.subject('tina@corp.example')!.enabled, 'a group above hers says on').to.equal(true);
    expect(m.subject('sam@corp.example')!.enabled, 'global off').to.equal(false);
    await stores.chat.setPolicy('group', 'desk-a1', false);
    await m.publish({ kind: 'policy' });
    expect(m.subject('tina@corp.example')!.enabled, 'one of her groups says off').to.equal(false);
    await stores.chat.setPolicy('user', 'tina@corp.example', true);
    await m.publish({ kind: 'policy' });
    expect(m.subject('tina@corp.example')!.enabled, 'her own entry').to.equal(true);
    for (const [scope, subject] of [['global', ''], ['group', 'traders'], ['group', 'desk-a1'], ['user', 'tina@corp.example']] as const) {
      await stores.chat.setPolicy(scope, subject, null);
    }
  });

  it('forgets, on a scoped directory change, only the sets it can have altered', async function () {
    const m = model('a');
    await m.start();
    await m.ensureSubjects(['tina@corp.example', 'sam@corp.example']);
    await m.publish({ kind: 'directory', directory: { keys: ['group:desk-a1'], edges: true } });
    expect(m.subject('tina@corp.example'), 'she is in desk-a1').to.equal(undefined);
    expect(m.subject('sam@corp.example'), 'untouched: still warm').to.not.equal(undefined);
    await m.publish({ kind: 'directory', directory: { users: ['sam@corp.example'] } });
    expect(m.subject('sam@corp.example')).to.equal(undefined);
    await m.ensureSubjects(['tina@corp.example']);
    await m.publish({ kind: 'directory', directory: {} });
    expect(m.subject('tina@corp.example'), 'an empty scope forgets nobody').to.not.equal(undefined);
  });

  it('reads the principal sets asked for in one turn with one statement', async function () {
    const calls: string[][] = [];
    const counted = { ...stores.directory, userEntries: (users: string[]) => { calls.push([...users]); return stores.directory.userEntries(users); } };
    const dir = new Directory(counted);
    await dir.start();
    await Promise.all([dir.load(['tina@corp.example']), dir.load(['sam@corp.example', 'tina@corp.example']), dir.load(['x@corp.example'])]);
    expect(calls.map((c) => c.sort())).to.deep.equal([['sam@corp.example', 'tina@corp.example', 'x@corp.example']]);
    expect(dir.peek('sam@corp.example')).to.include('ou:/corp/emea');
    await dir.load(['tina@corp.example']);
    expect(calls, 'cached: no statement').to.have.length(1);
  });

  it('applies a change published on one node to the other node\'s model and tells its listeners', async function () {
    let b: ChatModel | null = null;
    const a = model('a', async (c) => { b!.received(c); a.received(c); });
    b = model('b', async (c) => { a.received(c); b!.received(c); });
    await Promise.all([a.start(), b.start()]);
    await stores.chat.putCategory({
      service: SERVICE, name: 'Trading', description: '', allowed: ['group:traders'], denied: [], creators: [],
      invitations: false, fileUpload: true, chatHistory: true, editing: true,
    });
    await stores.chat.putRoom({
      service: SERVICE, room: 'fx', category: 'Trading', name: 'FX desk', description: '', privacy: 'closed', type: 'normal',
      invitations: 'inherit', disabled: false, addin: null, members: ['group:desk-a'], managers: [], presenters: [], createdAt: new Date(),
    });
    const heard: ChatChange[] = [];
    b.onChange((c) => { heard.push(c); });
    await a.publish({ kind: 'category', service: SERVICE, names: ['Trading'] });
    await a.publish({ kind: 'room', service: SERVICE, names: ['fx'] });
    const until = async (cond: () => boolean) => { for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10)); };
    await until(() => heard.length === 2);
    expect(heard.map((c) => c.kind)).to.deep.equal(['category', 'room']);
    const svc = b.forService(SERVICE)!;
    expect(svc.governed).to.equal(true);
    const fx = svc.roomByName('fx DESK')!;
    await b.ensureSubjects(['tina@corp.example']);
    expect(canJoin(b.subject('tina@corp.example')!, fx, svc.categoryOf(fx)!)).to.equal(true);

    // Tina leaves the nested group: after the directory change, node b answers no.
    await stores.directory.editGroupMembers('desk-a1', { add: [], remove: ['tina@corp.example'] });
    await a.publish({ kind: 'directory' });
    await until(() => heard.length === 3);
    expect(b.subject('tina@corp.example'), 'the cached set is gone').to.equal(undefined);
    await b.ensureSubjects(['tina@corp.example']);
    expect(canJoin(b.subject('tina@corp.example')!, fx, svc.categoryOf(fx)!)).to.equal(false);
  });
});
