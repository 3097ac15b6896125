/**
 * Cluster leases on Redis (one holder at a time, e.g. a room's owning node): `<prefix>lease:<key>` =
 * holder node id, taken with SET NX PX; renew and release are scripts that compare the holder first,
 * so a node never extends or deletes another node's lease. Each script touches its one lease key, so
 * leases spread over the shards of a Redis Cluster; the recovery window and the epoch are read apart.
 */
import { leaseTtl } from './session-memory.js';
import { RedisRecovery } from './redis-recovery.js';
import { sleep } from './redis-base.js';
import { ACQUIRE_LEASE, RELEASE_LEASE, RENEW_LEASE } from './redis-scripts.js';

export abstract class RedisLeases extends RedisRecovery {
  /** Leases this node took or renewed: until when it may count on them (from when it asked). */
  private readonly leaseUntil = new Map<string, number>();

  async acquireLease(key: string, ttlMs: number): Promise<string | null> {
    const ttl = leaseTtl(ttlMs);
    // A free lease during the recovery window waits for it to end (its holder may be taking it back).
    const giveUp = Date.now() + this.recoveryWindowMs + 1000;
    for (;;) {
      const asked = Date.now();
      const window = await this.link.cmd.pttl(this.keys.recovering);
      const r = await this.run(ACQUIRE_LEASE, [this.keys.lease(key)], [this.nodeId, ttl, window > 0 ? '1' : '0']);
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
