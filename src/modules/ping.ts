// XMPP Ping (XEP-0199): answers pings to the server and to accounts, and pings clients that have
// gone quiet so that dead connections are noticed and closed.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import type { LocalSession, Module, Server } from '../context.js';

/** How often idle sessions are looked for; one timer serves every session. */
const SCAN_MS = 5000;

/** One scan timer per started server (tests may run several in one process). */
const scanTimers = new WeakMap<Server, NodeJS.Timeout>();

function startIdleScan(server: Server): void {
  const idleMs = server.config.ping.idleSeconds * 1000;
  const timeoutMs = server.config.ping.timeoutSeconds * 1000;
  const pinging = new Set<LocalSession>();

  const ping = async (session: LocalSession): Promise<void> => {
    pinging.add(session);
    try {
      const iq = new Element('iq', { type: 'get', to: session.full, from: server.domain });
      iq.c('ping', { xmlns: NS.ping });
      // Any answer, even an error from a client without ping support, proves the client is there.
      const answer = await server.request(iq, timeoutMs);
      if (answer === null && !session.closed) {
        server.log.debug('ping timed out', { jid: session.full });
        session.close('connection-timeout', 'no answer to ping');
      }
    } finally {
      pinging.delete(session);
    }
  };

  const timer = setInterval(() => {
    const now = Date.now();
    for (const session of server.local.values()) {
      if (session.closed || pinging.has(session)) continue;
      // A session waiting for stream resumption has no connection, so nothing to ping.
      const last = session.lastActivity;
      if (last !== null && now - last >= idleMs) void ping(session);
    }
  }, Math.min(SCAN_MS, idleMs));
  timer.unref();
  scanTimers.set(server, timer);
}

export const pingModule: Module = {
  name: 'ping',
  init(server) {
    server.iq('host', NS.ping, 'get', () => null);
    // A ping to a bare JID is answered by the server on the account's behalf (RFC 6121 §8.5.1).
    server.iq('account', NS.ping, 'get', () => null);
    server.disco.hostFeatures.add(NS.ping);
    startIdleScan(server);
  },
  stop(server) {
    clearInterval(scanTimers.get(server));
    scanTimers.delete(server);
  },
};
