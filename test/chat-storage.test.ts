// The directory and persistent-chat stores: one behavioural suite run on PGlite and on PostgreSQL.
// PostgreSQL skips with a warning when unreachable, except in CI where it fails.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPglite } from '../storage/db-pglite.js';
import { openPostgres } from '../storage/db-postgres.js';
import { migrate } from '../storage/migrations.js';
import { createSqlStores } from '../storage/sql-stores.js';
import {
  DEFAULT_CHAT_SETTINGS,
  NameTaken,
  type CategoryRecord,
  type ChatRoomRecord,
  type DataStores,
  type Db,
  type StoredCredentials,
} from '../storage/types.js';

import { DATABASE_URL, probePostgres } from './services.js';
const rand = () => randomBytes(6).toString('hex');

interface Backend {
  name: string;
  probe?: () => Promise<void>;
  open(): Promise<{ db: Db; dispose(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'PGlite (temp dir)',
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'perch-chat-'));
      const db = await openPglite(dir);
      return {
        db,
        async dispose() {
          await db.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'PostgreSQL',
    probe: probePostgres,
    async open() {
      const schema = `perch_chat_test_${rand()}`;
      const db = await openPostgres(DATABASE_URL, { schema });
      return {
        db,
        async dispose() {
          await db.query(`DROP SCHEMA ${schema} CASCADE`);
          await db.close();
        },
      };
    },
  },
];

function creds(): StoredCredentials {
  const scram = () => ({ salt: randomBytes(8), iterations: 4096, storedKey: randomBytes(20), serverKey: randomBytes(20) });
  return { sha1: scram(), sha256: scram() };
}

const SVC = 'conference.example.org';
const OTHER_SVC = 'chat.example.org';

function category(name: string, extra: Partial<CategoryRecord> = {}): CategoryRecord {
  return { service: SVC, name, description: '', allowed: [], denied: [], creators: [], invitations: false, fileUpload: true, chatHistory: true, editing: true, ...extra };
}

function room(localpart: string, cat: string, extra: Partial<ChatRoomRecord> = {}): ChatRoomRecord {
  return {
    service: SVC,
    room: localpart,
    category: cat,
    name: localpart,
    description: '',
    privacy: 'closed',
    type: 'normal',
    invitations: 'inherit',
    disabled: false,
    addin: null,
    members: null,
    managers: [],
    presenters: [],
    createdAt: new Date('2026-01-02T03:04:05.000Z'),
    ...extra,
  };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

const TABLES = [
  'chat_invitations', 'chat_policies', 'chat_service_settings', 'chat_acl', 'chat_rooms', 'chat_addins', 'chat_categories',
  'user_org_units', 'org_units', 'directory_group_members', 'directory_groups', 'users',
];

describe('directory and chat store contract', function () {
  for (const backend of backends) {
    describe(backend.name, function () {
      let opened: { db: Db; dispose(): Promise<void> } | undefined;
      let s: DataStores;

      before(async function () {
        if (backend.probe) {
          try {
            await backend.probe();
          } catch (err) {
            const why = err instanceof Error ? err.message : String(err);
            if (process.env.CI === 'true') throw new Error(`${backend.name} at ${DATABASE_URL} is required in CI but unreachable: ${why}`);
            console.warn(`    ${backend.name} at ${DATABASE_URL} unreachable (${why}): skipping its suite`);
            this.skip();
          }
        }
        opened = await backend.open();
        await migrate(opened.db);
        s = createSqlStores(opened.db);
      });
      after(async function () {
        await opened?.dispose();
      });
      beforeEach(async function () {
        await s.db.query(`TRUNCATE ${TABLES.join(', ')} CASCADE`);
      });

      describe('groups', function () {
        it('creates, describes, lists and deletes groups', async function () {
          expect(await s.directory.putGroup('sales', 'Sales people')).to.equal(true);
          expect(await s.directory.putGroup('sales', 'Sellers')).to.equal(false);
          expect(await s.directory.putGroup('emea', '')).to.equal(true);
          expect(await s.directory.getGroup('sales')).to.deep.equal({ name: 'sales', description: 'Sellers', members: [] });
          expect(await s.directory.getGroup('nope')).to.equal(null);
          expect(await s.directory.editGroupMembers('sales', { add: ['bob@example.org', 'alice@example.org'], remove: [] })).to.equal(true);
          expect(await s.directory.listGroups()).to.deep.equal([
            { name: 'emea', description: '', members: 0 },
            { name: 'sales', description: 'Sellers', members: 2 },
          ]);
          expect(await s.directory.deleteGroup('sales')).to.equal(true);
          expect(await s.directory.deleteGroup('sales')).to.equal(false);
          expect(await s.directory.getGroup('sales')).to.equal(null);
          expect(await s.directory.listGroups()).to.deep.equal([{ name: 'emea', description: '', members: 0 }]);
        });

        it('edits members: add, remove, clear, and refuses an absent group', async function () {
          await s.directory.putGroup('g', '');
          await s.directory.editGroupMembers('g', { add: ['c@x.org', 'a@x.org', 'group:h', 'a@x.org'], remove: [] });
          expect((await s.directory.getGroup('g'))?.members).to.deep.equal(['a@x.org', 'c@x.org', 'group:h']);
          await s.directory.editGroupMembers('g', { add: ['b@x.org'], remove: ['c@x.org', 'missing@x.org'] });
          expect((await s.directory.getGroup('g'))?.members).to.deep.equal(['a@x.org', 'b@x.org', 'group:h']);
          await s.directory.editGroupMembers('g', { add: ['d@x.org'], remove: [], clear: true });
          expect((await s.directory.getGroup('g'))?.members).to.deep.equal(['d@x.org']);
          expect(await s.directory.editGroupMembers('absent', { add: ['a@x.org'], remove: [] })).to.equal(false);
          expect(await s.directory.getGroup('absent')).to.equal(null);
        });

        it('lists nesting edges, and deleting a group removes it from its parents', async function () {
          for (const g of ['a', 'b', 'c']) await s.directory.putGroup(g, '');
          await s.directory.editGroupMembers('a', { add: ['group:b', 'u@x.org'], remove: [] });
          await s.directory.editGroupMembers('b', { add: ['group:c'], remove: [] });
          await s.directory.editGroupMembers('c', { add: ['group:a'], remove: [] });
          expect(await s.directory.groupEdges()).to.deep.equal([
            { group: 'b', parent: 'a' },
            { group: 'c', parent: 'b' },
            { group: 'a', parent: 'c' },
          ]);
          await s.directory.deleteGroup('b');
          expect(await s.directory.groupEdges()).to.deep.equal([{ group: 'a', parent: 'c' }]);
          expect((await s.directory.getGroup('a'))?.members).to.deep.equal(['u@x.org']);
        });

        it('gives each asked user its direct groups and org unit, in one call for many users', async function () {
          await s.directory.putGroup('g1', '');
          await s.directory.putGroup('g2', '');
          await s.directory.putOrgUnit('/corp', '');
          await s.directory.editGroupMembers('g2', { add: ['ann@x.org', 'bob@x.org'], remove: [] });
          await s.directory.editGroupMembers('g1', { add: ['ann@x.org'], remove: [] });
          await s.directory.setUserOrgUnit('ann@x.org', '/corp');
          await s.directory.setUserOrgUnit('cid@x.org', '/corp');
          const many = Array.from({ length: 2000 }, (_, i) => `nobody${i}@x.org`);
          const entries = await s.directory.userEntries(['ann@x.org', 'bob@x.org', 'cid@x.org', 'dan@x.org', ...many]);
          expect([...entries.keys()].sort()).to.deep.equal(['ann@x.org', 'bob@x.org', 'cid@x.org']);
          expect(entries.get('ann@x.org')).to.deep.equal({ groups: ['g1', 'g2'], ou: '/corp' });
          expect(entries.get('bob@x.org')).to.deep.equal({ groups: ['g2'], ou: null });
          expect(entries.get('cid@x.org')).to.deep.equal({ groups: [], ou: '/corp' });
          expect((await s.directory.userEntries([])).size).to.equal(0);
        });
      });

      describe('org units', function () {
        it('creates, lists with user counts, moves users and refuses a missing unit', async function () {
          expect(await s.directory.putOrgUnit('/corp', 'Corp')).to.equal(true);
          expect(await s.directory.putOrgUnit('/corp', 'Corporation')).to.equal(false);
          expect(await s.directory.putOrgUnit('/corp/emea', '')).to.equal(true);
          expect(await s.directory.setUserOrgUnit('a@x.org', '/corp/emea')).to.equal(true);
          expect(await s.directory.setUserOrgUnit('b@x.org', '/corp/emea')).to.equal(true);
          expect(await s.directory.setUserOrgUnit('c@x.org', '/nowhere')).to.equal(false);
          expect(await s.directory.listOrgUnits()).to.deep.equal([
            { path: '/corp', description: 'Corporation', users: 0 },
            { path: '/corp/emea', description: '', users: 2 },
          ]);
          expect(await s.directory.setUserOrgUnit('b@x.org', '/corp')).to.equal(true);
          expect((await s.directory.userEntries(['b@x.org'])).get('b@x.org')?.ou).to.equal('/corp');
          expect(await s.directory.setUserOrgUnit('b@x.org', null)).to.equal(true);
          expect((await s.directory.userEntries(['b@x.org'])).has('b@x.org')).to.equal(false);
        });

        it('deletes a unit only when no user sits in it or below it', async function () {
          await s.directory.putOrgUnit('/corp', '');
          await s.directory.putOrgUnit('/corp/emea', '');
          await s.directory.putOrgUnit('/corp_x', '');
          await s.directory.setUserOrgUnit('a@x.org', '/corp/emea');
          await s.directory.setUserOrgUnit('z@x.org', '/corp_x');
          expect(await s.directory.deleteOrgUnit('/corp')).to.equal('not-empty');
          expect(await s.directory.deleteOrgUnit('/corp/emea')).to.equal('not-empty');
          await s.directory.setUserOrgUnit('a@x.org', null);
          // '/corp_x' is not below '/corp' ('_' is no wildcard here).
          expect(await s.directory.deleteOrgUnit('/corp')).to.equal(true);
          expect(await s.directory.deleteOrgUnit('/corp')).to.equal(false);
          expect((await s.directory.listOrgUnits()).map((o) => o.path)).to.deep.equal(['/corp/emea', '/corp_x']);
        });
      });

      describe('expandUsers', function () {
        beforeEach(async function () {
          await s.users.create('zed', creds());
          await s.users.create('amy', creds());
          for (const g of ['top', 'mid', 'low', 'loop']) await s.directory.putGroup(g, '');
          await s.directory.editGroupMembers('top', { add: ['t@example.org', 'group:mid'], remove: [] });
          await s.directory.editGroupMembers('mid', { add: ['m@other.org', 'group:low'], remove: [] });
          // low → loop → low: a cycle.
          await s.directory.editGroupMembers('low', { add: ['l@example.org', 'group:loop', 't@example.org'], remove: [] });
          await s.directory.editGroupMembers('loop', { add: ['group:low', 'group:top', 'p@example.org'], remove: [] });
          await s.directory.putOrgUnit('/corp', '');
          await s.directory.putOrgUnit('/corp/emea', '');
          await s.directory.putOrgUnit('/corp/emea/sales', '');
          await s.directory.putOrgUnit('/corpx', '');
          await s.directory.setUserOrgUnit('c@example.org', '/corp');
          await s.directory.setUserOrgUnit('e@third.org', '/corp/emea/sales');
          await s.directory.setUserOrgUnit('x@example.org', '/corpx');
          await s.chat.putCategory(category('Cat', { allowed: ['acl@example.org', 'group:a@example.org', 'domain:example.org'] }));
        });

        it('expands a user to itself', async function () {
          expect(await s.directory.expandUsers('who@any.org', 'example.org', 10)).to.deep.equal(['who@any.org']);
        });

        it('expands nested groups transitively, ending on cycles, sorted and limited', async function () {
          const all = ['l@example.org', 'm@other.org', 'p@example.org', 't@example.org'];
          expect(await s.directory.expandUsers('group:top', 'example.org', 100)).to.deep.equal(all);
          expect(await s.directory.expandUsers('group:low', 'example.org', 100)).to.deep.equal(all);
          expect(await s.directory.expandUsers('group:mid', 'example.org', 2)).to.deep.equal(['l@example.org', 'm@other.org']);
          expect(await s.directory.expandUsers('group:absent', 'example.org', 100)).to.deep.equal([]);
        });

        it('expands an org unit to the users of its subtree', async function () {
          expect(await s.directory.expandUsers('ou:/corp', 'example.org', 100)).to.deep.equal(['c@example.org', 'e@third.org']);
          expect(await s.directory.expandUsers('ou:/corp/emea', 'example.org', 100)).to.deep.equal(['e@third.org']);
          expect(await s.directory.expandUsers('ou:/corp', 'example.org', 1)).to.deep.equal(['c@example.org']);
          expect(await s.directory.expandUsers('ou:/none', 'example.org', 100)).to.deep.equal([]);
        });

        it('expands a domain to its accounts and the users of it found in groups, units and lists', async function () {
          expect(await s.directory.expandUsers('domain:example.org', 'example.org', 100)).to.deep.equal([
            'acl@example.org', 'amy@example.org', 'c@example.org', 'l@example.org', 'p@example.org', 't@example.org', 'x@example.org', 'zed@example.org',
          ]);
          expect(await s.directory.expandUsers('domain:example.org', 'example.org', 3)).to.deep.equal(['acl@example.org', 'amy@example.org', 'c@example.org']);
          // Accounts belong to the server's domain only.
          expect(await s.directory.expandUsers('domain:third.org', 'example.org', 100)).to.deep.equal(['e@third.org']);
          expect(await s.directory.expandUsers('domain:other.org', 'example.org', 100)).to.deep.equal(['m@other.org']);
          expect(await s.directory.expandUsers('domain:ample.org', 'example.org', 100)).to.deep.equal([]);
        });
      });

      describe('categories', function () {
        it('stores, lists sorted, replaces and keeps services apart', async function () {
          await s.chat.putCategory(category('Sales', {
            description: 'Sales rooms',
            allowed: ['group:sales', 'domain:example.org', 'group:sales'],
            denied: ['eve@example.org'],
            creators: ['bob@example.org', 'amy@example.org'],
            invitations: true,
            fileUpload: false,
            chatHistory: false,
            editing: false,
          }));
          await s.chat.putCategory(category('alpha'));
          await s.chat.putCategory({ ...category('Other'), service: OTHER_SVC });
          expect(await s.chat.categories(SVC)).to.deep.equal([
            category('alpha'),
            category('Sales', {
              description: 'Sales rooms',
              allowed: ['domain:example.org', 'group:sales'],
              denied: ['eve@example.org'],
              creators: ['amy@example.org', 'bob@example.org'],
              invitations: true,
              fileUpload: false,
              chatHistory: false,
              editing: false,
            }),
          ]);
          // Replaced by name case-insensitively (the stored spelling follows).
          await s.chat.putCategory(category('SALES', { allowed: ['group:sales', 'ann@example.org'], creators: [] }));
          const cats = await s.chat.categories(SVC);
          expect(cats.map((c) => c.name)).to.deep.equal(['alpha', 'SALES']);
          expect(cats[1]).to.deep.equal(category('SALES', { allowed: ['ann@example.org', 'group:sales'] }));
          expect((await s.chat.categories(OTHER_SVC)).map((c) => c.name)).to.deep.equal(['Other']);
          expect(await s.chat.categories('none.example.org')).to.deep.equal([]);
        });

        it('renames a category, carrying its rooms and its lists', async function () {
          await s.chat.putCategory(category('Old', { allowed: ['group:x'], creators: ['a@example.org'] }));
          await s.chat.putRoom(room('r1', 'Old'));
          await s.chat.putRoom(room('r2', 'Old'));
          await s.chat.putCategory(category('New', { allowed: ['group:x', 'group:y'], creators: ['a@example.org'] }), 'old');
          expect(await s.chat.categories(SVC)).to.deep.equal([category('New', { allowed: ['group:x', 'group:y'], creators: ['a@example.org'] })]);
          expect((await s.chat.rooms(SVC)).map((r) => r.category)).to.deep.equal(['New', 'New']);
          expect(await s.chat.deleteCategory(SVC, 'old')).to.equal(false);
          const rows = await s.db.query<{ n: unknown }>(`SELECT count(*) AS n FROM chat_acl WHERE object_kind = 'category' AND object_name = 'Old'`);
          expect(Number(rows[0]?.n)).to.equal(0);
        });

        it('refuses a name another category or a room has, case-insensitively', async function () {
          await s.chat.putCategory(category('Sales'));
          await s.chat.putCategory(category('Support'));
          await s.chat.putRoom(room('r1', 'Sales', { name: 'Lobby' }));
          const byCategory = await rejection(s.chat.putCategory(category('sUPPORT'), 'Sales'));
          expect(byCategory).to.be.instanceOf(NameTaken);
          expect((byCategory as NameTaken).by).to.equal('category');
          expect((byCategory as NameTaken).taken).to.equal('sUPPORT');
          const byRoom = await rejection(s.chat.putCategory(category('LOBBY')));
          expect(byRoom).to.be.instanceOf(NameTaken);
          expect((byRoom as NameTaken).by).to.equal('room');
          expect((await s.chat.categories(SVC)).map((c) => c.name)).to.deep.equal(['Sales', 'Support']);
          // The same name in another service is free.
          await s.chat.putCategory({ ...category('lobby'), service: OTHER_SVC });
        });

        it('deletes a category only when no room is in it, with its lists', async function () {
          await s.chat.putCategory(category('Busy', { allowed: ['group:a'] }));
          await s.chat.putCategory(category('Idle', { allowed: ['group:a'] }));
          await s.chat.putRoom(room('r', 'Busy'));
          expect(await s.chat.deleteCategory(SVC, 'busy')).to.equal('not-empty');
          expect(await s.chat.deleteCategory(SVC, 'IDLE')).to.equal(true);
          expect(await s.chat.deleteCategory(SVC, 'idle')).to.equal(false);
          expect((await s.chat.categories(SVC)).map((c) => c.name)).to.deep.equal(['Busy']);
          const rows = await s.db.query<{ n: unknown }>(`SELECT count(*) AS n FROM chat_acl WHERE object_name = 'Idle'`);
          expect(Number(rows[0]?.n)).to.equal(0);
          await s.chat.deleteRoom(SVC, 'r');
          expect(await s.chat.deleteCategory(SVC, 'Busy')).to.equal(true);
        });
      });

      describe('rooms', function () {
        beforeEach(async function () {
          await s.chat.putCategory(category('Cat'));
          await s.chat.putCategory(category('Other'));
        });

        it('stores every field and the lists, and tells inherited members from an empty list', async function () {
          await s.chat.putAddin({ service: SVC, name: 'Board', url: 'https://board.example.org/' });
          const full = room('r1', 'Cat', {
            name: 'Room One',
            description: 'first',
            privacy: 'secret',
            type: 'auditorium',
            invitations: 'off',
            disabled: true,
            addin: 'Board',
            members: ['group:b', 'a@example.org'],
            managers: ['m@example.org'],
            presenters: ['p@example.org', 'group:b'],
          });
          await s.chat.putRoom(full);
          await s.chat.putRoom(room('r2', 'Other', { members: [] }));
          await s.chat.putRoom(room('r3', 'Other'));
          const sorted = { ...full, members: ['a@example.org', 'group:b'], presenters: ['group:b', 'p@example.org'] };
          expect(await s.chat.room(SVC, 'r1')).to.deep.equal(sorted);
          expect((await s.chat.room(SVC, 'r2'))?.members).to.deep.equal([]);
          expect((await s.chat.room(SVC, 'r3'))?.members).to.equal(null);
          expect(await s.chat.room(SVC, 'absent')).to.equal(null);
          expect(await s.chat.rooms(SVC)).to.deep.equal([sorted, room('r2', 'Other', { members: [] }), room('r3', 'Other')]);
          expect(await s.chat.rooms(OTHER_SVC)).to.deep.equal([]);
        });

        it('replaces a room, including switching between inherited and explicit members', async function () {
          await s.chat.putRoom(room('r', 'Cat', { members: ['a@example.org', 'b@example.org'], managers: ['m@example.org'] }));
          await s.chat.putRoom(room('r', 'Other', { name: 'Renamed', privacy: 'open', members: ['b@example.org', 'c@example.org'] }));
          expect(await s.chat.room(SVC, 'r')).to.deep.equal(room('r', 'Other', { name: 'Renamed', privacy: 'open', members: ['b@example.org', 'c@example.org'] }));
          await s.chat.putRoom(room('r', 'Other', { name: 'Renamed', members: null }));
          expect((await s.chat.room(SVC, 'r'))?.members).to.equal(null);
          // The old display name is free again.
          await s.chat.putRoom(room('r2', 'Cat', { name: 'r' }));
        });

        it('refuses a display name another room or a category has, case-insensitively', async function () {
          await s.chat.putRoom(room('r1', 'Cat', { name: 'Lobby' }));
          const byRoom = await rejection(s.chat.putRoom(room('r2', 'Cat', { name: 'LOBBY' })));
          expect(byRoom).to.be.instanceOf(NameTaken);
          expect((byRoom as NameTaken).by).to.equal('room');
          const byCategory = await rejection(s.chat.putRoom(room('r3', 'Cat', { name: 'cAT' })));
          expect(byCategory).to.be.instanceOf(NameTaken);
          expect((byCategory as NameTaken).by).to.equal('category');
          expect(await s.chat.room(SVC, 'r2')).to.equal(null);
          expect(await s.chat.room(SVC, 'r3')).to.equal(null);
          // Its own name, in another case, is no clash.
          await s.chat.putRoom(room('r1', 'Cat', { name: 'lobby' }));
          expect((await s.chat.room(SVC, 'r1'))?.name).to.equal('lobby');
          await s.chat.putRoom({ ...room('r9', 'X', { name: 'Lobby' }), service: OTHER_SVC, category: 'Other2' }).then(
            () => expect.fail('a room needs its category'),
            (err: unknown) => expect(err).not.to.be.instanceOf(NameTaken),
          );
        });

        it('compares names case-insensitively beyond ASCII', async function () {
          await s.chat.putRoom(room('r1', 'Cat', { name: 'Église' }));
          const err = await rejection(s.chat.putRoom(room('r2', 'Cat', { name: 'ÉGLISE' })));
          expect(err).to.be.instanceOf(NameTaken);
          const cat = await rejection(s.chat.putCategory(category('église')));
          expect(cat).to.be.instanceOf(NameTaken);
          expect((cat as NameTaken).by).to.equal('room');
        });

        it('lets one of two writers racing for a name win, and the other get NameTaken', async function () {
          // Open pooled connections first (PostgreSQL), so the writers really run side by side.
          await Promise.all(Array.from({ length: 6 }, () => s.db.query('SELECT pg_sleep(0.05)')));
          for (let round = 0; round < 10; round++) {
            const results = await Promise.allSettled([
              s.chat.putRoom(room(`a${round}`, 'Cat', { name: `Race${round}` })),
              s.chat.putRoom(room(`b${round}`, 'Cat', { name: `race${round}` })),
              s.chat.putCategory(category(`RACE${round}`)),
            ]);
            expect(results.filter((r) => r.status === 'fulfilled')).to.have.length(1);
            for (const r of results) if (r.status === 'rejected') expect(r.reason).to.be.instanceOf(NameTaken);
          }
        });

        it('refuses a privacy outside open, closed, secret', async function () {
          const err = await rejection(s.chat.putRoom(room('r', 'Cat', { privacy: 'public' as never })));
          expect(err).to.be.instanceOf(Error);
          expect(await s.chat.room(SVC, 'r')).to.equal(null);
        });

        it('deletes a room with its lists', async function () {
          await s.chat.putRoom(room('r', 'Cat', { members: ['a@example.org'], managers: ['m@example.org'] }));
          expect(await s.chat.deleteRoom(SVC, 'r')).to.equal(true);
          expect(await s.chat.deleteRoom(SVC, 'r')).to.equal(false);
          expect(await s.chat.room(SVC, 'r')).to.equal(null);
          const rows = await s.db.query<{ n: unknown }>(`SELECT count(*) AS n FROM chat_acl WHERE object_kind = 'room'`);
          expect(Number(rows[0]?.n)).to.equal(0);
        });

        it('loads many rooms with their lists', async function () {
          const many = Array.from({ length: 300 }, (_, i) => room(`room${String(i).padStart(3, '0')}`, i % 2 ? 'Cat' : 'Other', {
            members: i % 3 ? [`u${i}@example.org`, 'group:all'] : null,
            managers: [`m${i}@example.org`],
          }));
          for (const r of many) await s.chat.putRoom(r);
          const loaded = await s.chat.rooms(SVC);
          expect(loaded).to.deep.equal(many.map((r) => ({ ...r, members: r.members ? [...r.members].sort() : null })));
        });
      });

      describe('add-ins', function () {
        it('stores, renames (rooms follow), refuses a taken name and deletes', async function () {
          await s.chat.putCategory(category('Cat'));
          await s.chat.putAddin({ service: SVC, name: 'Board', url: 'https://a/' });
          await s.chat.putAddin({ service: SVC, name: 'alpha', url: 'https://b/' });
          await s.chat.putRoom(room('r', 'Cat', { addin: 'Board' }));
          expect(await s.chat.addins(SVC)).to.deep.equal([
            { service: SVC, name: 'alpha', url: 'https://b/' },
            { service: SVC, name: 'Board', url: 'https://a/' },
          ]);
          await s.chat.putAddin({ service: SVC, name: 'board', url: 'https://c/' });
          expect((await s.chat.addins(SVC)).map((a) => [a.name, a.url])).to.deep.equal([['alpha', 'https://b/'], ['board', 'https://c/']]);
          expect((await s.chat.room(SVC, 'r'))?.addin).to.equal('board');
          await s.chat.putAddin({ service: SVC, name: 'Wall', url: 'https://w/' }, 'BOARD');
          expect((await s.chat.addins(SVC)).map((a) => a.name)).to.deep.equal(['alpha', 'Wall']);
          expect((await s.chat.room(SVC, 'r'))?.addin).to.equal('Wall');
          const err = await rejection(s.chat.putAddin({ service: SVC, name: 'ALPHA', url: 'https://x/' }, 'wall'));
          expect(err).to.be.instanceOf(NameTaken);
          expect((err as NameTaken).by).to.equal('addin');
          expect(await s.chat.deleteAddin(SVC, 'WALL')).to.equal(true);
          expect(await s.chat.deleteAddin(SVC, 'wall')).to.equal(false);
          expect((await s.chat.addins(SVC)).map((a) => a.name)).to.deep.equal(['alpha']);
          expect(await s.chat.addins(OTHER_SVC)).to.deep.equal([]);
        });
      });

      describe('service settings', function () {
        it('defaults, then stores per service', async function () {
          expect(await s.chat.settings(SVC)).to.deep.equal(DEFAULT_CHAT_SETTINGS);
          const mine = { defaultHistory: 50, maxFileSizeKb: 1000, participantUpdateLimit: 10, roomManagementUrl: 'https://manage/' };
          await s.chat.putSettings(SVC, mine);
          expect(await s.chat.settings(SVC)).to.deep.equal(mine);
          await s.chat.putSettings(SVC, { ...mine, defaultHistory: 5 });
          expect((await s.chat.settings(SVC)).defaultHistory).to.equal(5);
          expect(await s.chat.settings(OTHER_SVC)).to.deep.equal(DEFAULT_CHAT_SETTINGS);
        });
      });

      describe('policies', function () {
        it('sets, replaces and unsets entries, listed sorted', async function () {
          expect(await s.chat.policies()).to.deep.equal([]);
          await s.chat.setPolicy('user', 'bob@example.org', false);
          await s.chat.setPolicy('global', '', true);
          await s.chat.setPolicy('group', 'sales', true);
          await s.chat.setPolicy('user', 'amy@example.org', true);
          await s.chat.setPolicy('group', 'sales', false);
          expect(await s.chat.policies()).to.deep.equal([
            { scope: 'global', subject: '', enabled: true },
            { scope: 'group', subject: 'sales', enabled: false },
            { scope: 'user', subject: 'amy@example.org', enabled: true },
            { scope: 'user', subject: 'bob@example.org', enabled: false },
          ]);
          await s.chat.setPolicy('global', '', null);
          await s.chat.setPolicy('user', 'bob@example.org', null);
          await s.chat.setPolicy('user', 'nobody@example.org', null);
          expect(await s.chat.policies()).to.deep.equal([
            { scope: 'group', subject: 'sales', enabled: false },
            { scope: 'user', subject: 'amy@example.org', enabled: true },
          ]);
        });
      });

      describe('invitations', function () {
        it('stores invitations with increasing ids and pages a user\'s after an id', async function () {
          expect(await s.chat.addInvitations([])).to.deep.equal([]);
          const before = Date.now();
          const first = await s.chat.addInvitations([
            { user: 'amy@example.org', service: SVC, room: 'r1', inviter: 'bob@example.org' },
            { user: 'cid@example.org', service: SVC, room: 'r1', inviter: 'bob@example.org' },
            { user: 'amy@example.org', service: SVC, room: 'r2', inviter: 'cid@example.org' },
          ]);
          expect(first.map((i) => [i.user, i.room, i.inviter])).to.deep.equal([
            ['amy@example.org', 'r1', 'bob@example.org'],
            ['cid@example.org', 'r1', 'bob@example.org'],
            ['amy@example.org', 'r2', 'cid@example.org'],
          ]);
          const ids = first.map((i) => i.id);
          expect(ids[0]! < ids[1]! && ids[1]! < ids[2]!).to.equal(true);
          for (const i of first) {
            expect(i.service).to.equal(SVC);
            expect(i.at).to.be.instanceOf(Date);
            expect(i.at.getTime()).to.be.within(before - 60_000, Date.now() + 60_000);
          }
          const [later] = await s.chat.addInvitations([{ user: 'amy@example.org', service: OTHER_SVC, room: 'r3', inviter: 'bob@example.org' }]);
          expect(later!.id).to.be.greaterThan(ids[2]!);
          const amy = await s.chat.invitations('amy@example.org', 0, 10);
          expect(amy.map((i) => i.room)).to.deep.equal(['r1', 'r2', 'r3']);
          expect(amy[0]).to.deep.equal(first[0]);
          expect((await s.chat.invitations('amy@example.org', ids[0]!, 1)).map((i) => i.room)).to.deep.equal(['r2']);
          expect((await s.chat.invitations('amy@example.org', ids[2]!, 10)).map((i) => i.room)).to.deep.equal(['r3']);
          expect(await s.chat.invitations('amy@example.org', later!.id, 10)).to.deep.equal([]);
          expect(await s.chat.invitations('nobody@example.org', 0, 10)).to.deep.equal([]);
        });
      });
    });
  }
});
