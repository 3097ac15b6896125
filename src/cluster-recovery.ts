// What a node does when the session store (Redis) fails under it: one log line per outage, the
// redis_up gauge, write-back after Redis came back empty (the store writes the sessions, the
// 'cluster/store-reset' hook lets modules re-assert the rest), a clean end for the sessions other
// nodes removed while this one was cut off, and on Sentinel a warning per sentinel lost. See
// docs/architecture.md, "When Redis restarts or is cut off".
import client from 'prom-client';
import type { StoreReset } from '../storage/types.js';
import type { LocalSession, Server } from './context.js';

export interface ClusterRecoveryMetrics {
  up: client.Gauge;
  resets: client.Counter<'kind'>;
  recoverySeconds: client.Gauge;
  sentinelsUnreachable: client.Gauge;
}

export interface SessionStoreWatch extends ClusterRecoveryMetrics {
  /** False while the session store cannot be reached (its failures are then expected, not news). */
  isUp(): boolean;
}

export function watchSessionStore(server: Server): SessionStoreWatch {
  const registers = [server.metrics.registry];
  const metrics: ClusterRecoveryMetrics = {
    up: new client.Gauge({ name: 'perch_redis_up', help: 'The session store (Redis) answers this node, which has caught up after any outage (1), or not (0)', registers }),
    resets: new client.Counter({
      name: 'perch_store_resets_total', labelNames: ['kind'], registers,
      help: 'Session store faults this node recovered from: empty (Redis came back without data), dropped (other nodes had removed sessions of this one)',
    }),
    recoverySeconds: new client.Gauge({
      name: 'perch_store_recovery_seconds', registers,
      help: 'Last recovery from a session store fault: from Redis going away (or the fault being found) until this node had written its state back',
    }),
    sentinelsUnreachable: new client.Gauge({
      name: 'perch_redis_sentinels_unreachable', registers,
      help: 'Redis sentinels this node cannot reach (Sentinel only): failovers are heard through the others, and the master is looked up among them',
    }),
  };
  metrics.up.set(1);
  const sessions = server.sessions;
  let downSince: number | null = null;
  /** When the last outage began: a reset is found only once Redis answers again, after it ended. */
  let outageBegan: number | null = null;
  sessions.onHealth((h) => {
    metrics.up.set(h.up ? 1 : 0);
    if (h.up) {
      server.log.info('session store reachable again', { downMs: h.downMs });
      if (downSince !== null) metrics.recoverySeconds.set((Date.now() - downSince) / 1000);
      downSince = null;
    } else {
      downSince = Date.now();
      outageBegan = downSince;
      server.log.warn('session store unreachable; local sessions keep working, stanzas for other nodes are refused', { err: h.error });
    }
  });
  // A sentinel down is not an outage (the master answers, the others watch it): a warning, once.
  const sentinelsDown = new Set<string>();
  sessions.onSentinel((s) => {
    if (s.up) {
      sentinelsDown.delete(s.address);
      server.log.info('redis sentinel reachable again', { sentinel: s.address, downMs: s.downMs });
    } else {
      sentinelsDown.add(s.address);
      server.log.warn('redis sentinel unreachable; failovers are heard through the other sentinels', { sentinel: s.address, err: s.error });
    }
    metrics.sentinelsUnreachable.set(sentinelsDown.size);
  });
  sessions.onReset(async (reset: StoreReset) => {
    metrics.resets.inc({ kind: reset.kind });
    const started = Date.now();
    if (reset.kind === 'empty') {
      server.log.warn('session store came back empty; writing this node\'s state back', { sessions: reset.records.length });
      try {
        await server.hooks.fire('cluster/store-reset', { records: reset.records });
      } catch (err) {
        server.log.error('re-asserting state after a session store reset failed', { err });
      }
      const from = outageBegan !== null && started - outageBegan < 60_000 ? outageBegan : started;
      outageBegan = null;
      metrics.recoverySeconds.set((Date.now() - from) / 1000);
      server.log.info('state written back after the session store reset', { ms: Date.now() - started });
      return;
    }
    // The other nodes told these sessions' contacts and rooms they were gone: end them cleanly, and
    // the clients log in again to a consistent cluster (catching up through MAM).
    server.log.warn('other nodes removed sessions of this node while it was cut off; ending them', { sessions: reset.records.length });
    for (const rec of reset.records) {
      const s: LocalSession | undefined = server.local.get(rec.jid);
      if (s) {
        // The <a/> first: what was handled (kept, or refused with an error) is not sent again (a
        // one-to-one message would be archived twice).
        if (!s.closed) s.close('reset', 'this server lost contact with its cluster; please reconnect', { ack: true });
      } else {
        // Not a client (a component's domain): nobody was told it went, so it is simply registered again.
        await sessions.put(rec).catch((err: unknown) => server.log.warn('session store: registering a component again failed', { err, jid: rec.jid }));
      }
    }
  });
  return { ...metrics, isUp: () => downSince === null };
}
