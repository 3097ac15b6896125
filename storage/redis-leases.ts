/**
 * Cluster leases on Redis (one holder at a time, e.g. a room's owning node): `<prefix>lease:<key>` =
 * holder node id, taken with SET NX PX; renew and release are scripts that compare the holder first,
 * so a node never extends or deletes another node's lease. Each script touches its one lease key, so
 * leases spread over the shards of a Redis Cluster; the recovery window and the epoch are read apart.
 */
import { leaseTtl } from './session-memory.js';
import { RedisRecovery } from './redis-recovery.js';
import { sleep } from './redis-base.js';
import { ACQUIRE_LEASE, RELEASE_LEASE, RENEW_LEASE, RENEW_LEASES } from './redis-scripts.js';

/** Leases renewed by one script call: a node holding tens of thousands of rooms makes a few calls a round, not one per room. */
const RENEW_BATCH = 500;

export abstract class RedisLeases extends RedisRecovery {
  /** Leases this node took or renewed: until when it may count on them (from when it asked). */
  private readonly leaseUntil = new Map<string, number>();

  async acquireLease(key: string, ttlMs: number): Promise<string | null> {
    const ttl = leaseTtl(ttlMs);
    // A free lease during the recovery window waits for it to end (its holder may be taking it back).
    let giveUp = Date.now() + this.recoveryWindowMs + 1000;
    for (;;) {
      const asked = Date.now();
      const window = await this.link.cmd.pttl(this.keys.recovering);
      const r = await this.run(ACQUIRE_LEASE, [this.keys.lease(key)], [this.nodeId, ttl, window > 0 ? '1' : '0']);
      // Redis came back empty and no node has noticed yet (no beat since, so no recovery window): the
      // lease looked free because Redis lost it, and its holder still acts on it until its next
      // renewal. Taking it would make two owners, so this node notices first (its beat opens the
      // window), lets go of what it took and asks again. The epoch is read after the take: a restart
      // between the two reads shows too.
      if (r !== -1 && (await this.link.cmd.get(this.keys.epoch)) !== this.epoch) {
        if (r === this.nodeId) await this.run(RELEASE_LEASE, [this.keys.lease(key)], [this.nodeId]);
        if (this.closing) return null;
        await this.beat();
        await this.recovery;
        giveUp = Date.now() + this.recoveryWindowMs + 1000;
        continue;
      }
      if (r === -1) {
        if (Date.now() > giveUp) return null;
        await sleep(Math.max(1, Math.min(window, 200)));
        continue;
      }
      const holder = typeof r === 'string' ? r : null;
      if (holder === this.nodeId) this.leaseUntil.set(key, asked + ttl);
      return holder;
    }
  }

  /** As acquireLease without the recovery window (the previous holder taking its lease back). */
  async reclaimLease(key: string, ttlMs: number): Promise<string | null> {
    const ttl = leaseTtl(ttlMs);
    const asked = Date.now();
    const r = await this.run(ACQUIRE_LEASE, [this.keys.lease(key)], [this.nodeId, ttl, '0']);
    const holder = typeof r === 'string' ? r : null;
    if (holder === this.nodeId) this.leaseUntil.set(key, asked + ttl);
    else this.leaseUntil.delete(key);
    return holder;
  }

  async renewLease(key: string, ttlMs: number): Promise<boolean> {
    const ttl = leaseTtl(ttlMs);
    const asked = Date.now();
    const r = await this.run(RENEW_LEASE, [this.keys.lease(key)], [this.nodeId, ttl, this.holdsLease(key) ? '1' : '0']);
    if (r === 1) {
      this.leaseUntil.set(key, asked + ttl);
      return true;
    }
    if (r !== 0 && (await this.link.cmd.get(this.keys.epoch)) !== this.epoch) {
      // Redis came back empty and this node has not noticed yet: recover (the reset handlers take
      // the lease back), then answer for what holds now.
      await this.beat();
      await this.recovery;
      return this.holdsLease(key) && (await this.leaseHolder(key)) === this.nodeId;
    }
    if (r === 2) {
      // Lost with the last writes of a failed master: this node had it, and has it again.
      this.leaseUntil.set(key, asked + ttl);
      return true;
    }
    this.leaseUntil.delete(key);
    return false;
  }

  async renewLeases(keys: readonly string[], ttlMs: number): Promise<boolean[]> {
    // On a Cluster the leases are on different shards, and one script may touch one slot only.
    if (this.link.cluster) return Promise.all(keys.map((k) => this.renewLease(k, ttlMs)));
    const ttl = leaseTtl(ttlMs);
    const out: Promise<boolean[]>[] = [];
    for (let i = 0; i < keys.length; i += RENEW_BATCH) {
      const chunk = keys.slice(i, i + RENEW_BATCH);
      const asked = Date.now();
      out.push(this.run(RENEW_LEASES, chunk.map((k) => this.keys.lease(k)), [this.nodeId, ttl]).then((codes) => {
        const renewed = codes as number[];
        // What was not simply renewed (lost, lapsed, or Redis came back empty) is asked about alone.
        return Promise.all(chunk.map((k, j) => {
          if (renewed[j] !== 1) return this.renewLease(k, ttlMs);
          this.leaseUntil.set(k, asked + ttl);
          return true;
        }));
      }));
    }
    return (await Promise.all(out)).flat();
  }

  async releaseLease(key: string): Promise<void> {
    this.leaseUntil.delete(key);
    await this.run(RELEASE_LEASE, [this.keys.lease(key)], [this.nodeId]);
  }

  holdsLease(key: string): boolean {
    return (this.leaseUntil.get(key) ?? 0) > Date.now();
  }

  leaseHolder(key: string): Promise<string | null> {
    return this.link.cmd.get(this.keys.lease(key));
  }
}
