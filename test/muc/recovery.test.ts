// Rooms when the session store fails under them (src/muc/recovery.ts): after it came back empty a
// loaded room takes its lease back with its occupants, or lets the room go when another node got the
// lease meanwhile; a room whose lease this node can no longer count on is let go.
import { expect } from 'chai';
import { MemoryLeases, MemorySessionStore } from '../../storage/session-memory.js';
import { startRoomKit, createRoom, say, heard, settle, type RoomKit } from './kit.js';

describe('MUC: rooms when the session store fails', function () {
  this.timeout(20000);
  let kit: RoomKit;
  beforeEach(async () => { kit = await startRoomKit(); });
  afterEach(async () => { await kit.stop(); });

  /** What an empty store looks like to the room: no lease, no occupants' hash. */
  async function emptyStore(room: string): Promise<void> {
    const key = kit.service.storeKey(room);
    await kit.server.sessions.releaseLease(key);
    await kit.server.sessions.stateDelete(key);
  }

  it('takes its lease back and writes every occupant again', async function () {
    const owner = await kit.client('owner@localhost');
    const guest = await kit.client('guest@localhost');
    await createRoom(owner, 'back');
    await guest.join('back', 'guest');
    const key = kit.service.storeKey('back');
    await emptyStore('back');
    expect(await kit.server.sessions.stateGetAll(key)).to.deep.equal({});
    await kit.server.hooks.fire('cluster/store-reset', { records: [] });
    expect(await kit.server.sessions.leaseHolder(key)).to.equal(kit.server.sessions.nodeId);
    expect(Object.keys(await kit.server.sessions.stateGetAll(key)).sort()).to.deep.equal(['guest', 'owner']);
    expect(kit.service.loadedRoom('back')).to.not.equal(undefined);
    // Still the same room, with its occupants: the guest's message is not refused.
    say(guest, 'back', 'still here');
    await heard(owner, 'still here');
  });

  it('lets the room go when another node took its lease meanwhile', async function () {
    const owner = await kit.client('owner@localhost');
    await createRoom(owner, 'taken');
    const key = kit.service.storeKey('taken');
    await emptyStore('taken');
    // Another node of the same cluster (same lease table) takes the free lease first.
    const leases = (kit.server.sessions as unknown as { leases: MemoryLeases }).leases;
    const other = new MemorySessionStore('other-node', leases);
    expect(await other.acquireLease(key, 15_000)).to.equal('other-node');
    await kit.server.hooks.fire('cluster/store-reset', { records: [] });
    expect(kit.service.loadedRoom('taken')).to.equal(undefined);
    expect(await kit.server.sessions.leaseHolder(key)).to.equal('other-node');
  });

  it('lets a room go as soon as its lease can no longer be counted on', async function () {
    const owner = await kit.client('owner@localhost');
    await createRoom(owner, 'lapsed');
    expect(kit.service.loadedRoom('lapsed')).to.not.equal(undefined);
    // As when renewals fail for a whole TTL (Redis unreachable): this node no longer holds it.
    await kit.server.sessions.releaseLease(kit.service.storeKey('lapsed'));
    await settle(1300);
    expect(kit.service.loadedRoom('lapsed')).to.equal(undefined);
  });
});
