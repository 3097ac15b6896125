// A node with many rooms renews every room's lease each second. One call per room kept Redis so busy at
// 33,000 rooms that the node's own health check went unanswered and it fenced itself (bench/sizing.mjs:
// 4,245 loads refused). A round is now one renewLeases call (the store batches it), and a slow round
// does not hold the next one back for the rooms it does not hold.
import { expect } from 'chai';
import { startRoomKit, createRoom, say, conditionOf, type RoomKit } from './kit.js';

describe('room leases: one batched renewal per round', () => {
  let kit: RoomKit;
  before(async () => { kit = await startRoomKit({ nodeId: 'kit-lease-round' }); });
  after(async () => { await kit.stop(); });

  it('renews every loaded room in one call a round, none alone', async function () {
    this.timeout(20000);
    const owner = await kit.client('lr-owner@localhost');
    for (const name of ['lr-a', 'lr-b', 'lr-c']) {
      await createRoom(owner, name);
      await owner.join(name, 'owner');
    }
    const sessions = kit.server.sessions as unknown as {
      renewLease(key: string, ttl: number): Promise<boolean>;
      renewLeases(keys: readonly string[], ttl: number): Promise<boolean[]>;
    };
    const single = sessions.renewLease.bind(sessions);
    const batch = sessions.renewLeases.bind(sessions);
    const batches: string[][] = [];
    let singles = 0;
    sessions.renewLease = (key, ttl) => { singles++; return single(key, ttl); };
    sessions.renewLeases = (keys, ttl) => { batches.push([...keys]); return batch(keys, ttl); };
    try {
      await new Promise((r) => setTimeout(r, 2300));
      expect(singles).to.equal(0);
      expect(batches.length).to.be.within(2, 3);
      for (const keys of batches) expect(keys.filter((k) => /lr-[abc]/.test(k))).to.have.length(3);
      owner.clear();
      say(owner, 'lr-a', 'still here');
      const answer = await owner.next((el) => el.name === 'message' && (el.getChildText('body') === 'still here' || el.attrs.type === 'error'), 3000);
      expect(answer.attrs.type, `refused: ${conditionOf(answer)}`).to.equal('groupchat');
    } finally {
      sessions.renewLease = single;
      sessions.renewLeases = batch;
    }
  });
});
