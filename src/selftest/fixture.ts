// The self-test's fixture: two test accounts and a private room only they may use. Setup creates or
// resets it (new random passwords, the room's scope and archive reset); the passwords are kept in
// the database, beside each account's other data, so that every node of a cluster and the CLI on
// any machine sharing the database find them.
import { randomBytes } from 'node:crypto';
import { addUser, setPassword } from '../accounts.js';
import type { DataStores } from '../../storage/types.js';
import {
  createCategory, createRoom, modelOf, serviceOf, svcModel, updateCategory, updateRoom, type ChatActor, type ChatOpContext,
} from '../pchat/operations.js';

export const SELFTEST_USERS = ['perch-selftest-1', 'perch-selftest-2'] as const;
export const SELFTEST_ROOM = 'perch-selftest';
/** The category holding the room on a governed service (a persistent-chat one). */
export const SELFTEST_CATEGORY = 'perch-selftest-category';
/** The user data kind holding a test account's password and the room it tests. */
const KIND = 'selftest';

export interface TestAccount { username: string; password: string }
export interface Fixture { users: [TestAccount, TestAccount]; room: string }

/** The fixture setup made, or null when there is none (or part of it is gone). */
export async function loadFixture(stores: DataStores): Promise<Fixture | null> {
  const users: TestAccount[] = [];
  for (const username of SELFTEST_USERS) {
    const password = await stores.userData.get(username, KIND, 'password');
    if (!password || !(await stores.users.get(username))) return null;
    users.push({ username, password });
  }
  const room = await stores.userData.get(SELFTEST_USERS[0], KIND, 'room');
  return room ? { users: users as [TestAccount, TestAccount], room } : null;
}

export interface SetupResult { fixture: Fixture; actions: string[] }

/**
 * Creates or resets the two accounts and the room on the service (the only one when null). On a
 * governed service the room is a secret room in its own category whose scope is the two accounts,
 * so it changes nothing for anyone else; on a plain service a hidden, persistent, members-only room.
 */
export async function setupFixture(ctx: ChatOpContext, scramIterations: number, service: string | null): Promise<SetupResult> {
  const { stores, domain } = ctx;
  const actions: string[] = [];
  const users: TestAccount[] = [];
  for (const username of SELFTEST_USERS) {
    const password = randomBytes(24).toString('base64url');
    const created = await addUser(stores, domain, username, password, scramIterations);
    if (created === 'exists') {
      await setPassword(stores, domain, username, password, scramIterations);
      await stores.users.setDisabled(username, false);
      actions.push(`reset the password of ${username}@${domain}`);
    } else if (created === 'ok') {
      actions.push(`created ${username}@${domain}`);
    } else {
      throw new Error(`cannot create ${username}@${domain}`);
    }
    await stores.userData.put(username, KIND, 'password', password);
    users.push({ username, password });
  }
  const jids = SELFTEST_USERS.map((u) => `${u}@${domain}`);
  const svcDomain = serviceOf(ctx, service);
  const room = `${SELFTEST_ROOM}@${svcDomain}`;
  const local: ChatActor = { kind: 'local' };
  const model = await modelOf(ctx);
  const svc = svcModel(model, svcDomain);
  if (svc.governed) {
    if (svc.category(SELFTEST_CATEGORY)) {
      await updateCategory(ctx, local, svcDomain, SELFTEST_CATEGORY, { allowed: { replace: jids }, denied: { replace: [] }, chatHistory: true });
    } else {
      await createCategory(ctx, local, svcDomain, {
        name: SELFTEST_CATEGORY, description: 'The self-test\'s accounts and room (perch selftest --setup)',
        allowed: { replace: jids }, chatHistory: true,
      });
      actions.push(`created category ${SELFTEST_CATEGORY} in ${svcDomain}`);
    }
    const changes = { category: SELFTEST_CATEGORY, privacy: 'secret' as const, type: 'normal' as const, disabled: false, members: { replace: jids }, invitations: 'off' as const };
    if (svc.room(SELFTEST_ROOM)) {
      await updateRoom(ctx, local, svcDomain, SELFTEST_ROOM, changes);
      actions.push(`reset room ${room} (secret, members: the two test accounts)`);
    } else {
      await createRoom(ctx, local, svcDomain, SELFTEST_ROOM, { ...changes, name: SELFTEST_ROOM, description: 'Self-test room' });
      actions.push(`created room ${room} (secret, members: the two test accounts)`);
    }
  } else {
    const existing = await stores.rooms.get(svcDomain, SELFTEST_ROOM);
    await stores.rooms.put({
      service: svcDomain, name: SELFTEST_ROOM,
      config: { ...existing?.config, name: SELFTEST_ROOM, description: 'Self-test room', persistent: true, membersOnly: true, public: false },
      affiliations: Object.fromEntries(jids.map((j) => [j, 'member' as const])),
      subject: existing?.subject ?? null, createdAt: existing?.createdAt ?? new Date(), persistent: true,
    });
    actions.push(`${existing ? 'reset' : 'created'} room ${room} (hidden, members-only, members: the two test accounts)`);
  }
  // Each setup starts the room's archive afresh, so that it holds only the runs since.
  const removed = await stores.archive.removeArchive(room);
  if (removed > 0) actions.push(`cleared ${removed} archived self-test messages`);
  await stores.userData.put(SELFTEST_USERS[0], KIND, 'room', room);
  return { fixture: { users: users as [TestAccount, TestAccount], room }, actions };
}
