// A node with many rooms renews one lease per room every second; with 33,000 rooms loaded the last
// answers of a round come back after more than RENEW_STALL_MS even though Redis answers all along
// (bench/sizing.mjs: 83 of 33,000 room creations refused with recipient-unavailable). The node fences
// itself only when Redis is silent: the first answer of a round ends the stall.
import { expect } from 'chai';
import { startRoomKit, createRoom, say, conditionOf, type RoomKit } from './kit.js';

describe('room leases: a long renewal round is not a silent Redis', () => {
  let kit: RoomKit;
  before(async () => { kit = await startRoomKit({ nodeId: 'kit-lease-round' }); });
  after(async () => { await kit.stop(); });

  it('takes room stanzas while the answers of a round still come in', async function () {
    this.timeout(20000);
    const owner = await kit.client('lr-owner@localhost');
    await createRoom(owner, 'lr-fast');
    await createRoom(owner, 'lr-slow', {}, 'owner2');
    await owner.join('lr-fast', 'owner');
    // The slow room's renewal is answered after 2.5 s (the last of a large round); the others at once.
    const sessions = kit.server.sessions as unknown as { renewLease(key: string, ttl: number): Promise<boolean> };
    const renew = sessions.renewLease.bind(sessions);
    let slowAsked = 0;
    sessions.renewLease = async (key, ttl) => {
      if (key.includes('lr-slow')) {
        slowAsked = Date.now();
        await new Promise((r) => setTimeout(r, 2500));
      }
      return renew(key, ttl);
    };
    try {
      while (slowAsked === 0) await new Promise((r) => setTimeout(r, 20));
      // Past RENEW_STALL_MS (1 s) into the round, the slow answer still out.
      await new Promise((r) => setTimeout(r, 1300));
      owner.clear();
      say(owner, 'lr-fast', 'still here');
      const answer = await owner.next((el) => el.name === 'message' && (el.getChildText('body') === 'still here' || el.attrs.type === 'error'), 3000);
      expect(answer.attrs.type, `refused: ${conditionOf(answer)}`).to.equal('groupchat');
    } finally {
      sessions.renewLease = renew;
    }
  });
});
