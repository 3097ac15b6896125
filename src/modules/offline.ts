// Offline messages (RFC 6121 §8.5.2.2, XEP-0160): messages for an account with no available resource
// are queued with a XEP-0203 delay and delivered when a resource comes online with non-negative priority.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { StanzaError } from '../../protocol/errors.js';
import { parseStanzaString } from '../../protocol/xml-stream.js';
import type { LocalSession, Module, Server } from '../context.js';
import { formatDateTimeSeconds } from '../../protocol/datetime.js';
import { sessionStartOf } from './session-start.js';

const MODULE = 'offline';

/** What to do with a message that found no resource to take it. */
export type OfflineDecision = 'store' | 'ignore' | 'refuse';

/**
 * XEP-0160 §3 and XEP-0334: chat and normal messages are stored, except those carrying nothing but
 * chat states (or nothing at all), which are ignored; a <no-store/> hint refuses storage and a
 * <store/> hint asks for it whatever the content.
 */
export function offlineDecision(stanza: Element): OfflineDecision {
  const type = stanza.attrs.type ?? 'normal';
  if (type !== 'chat' && type !== 'normal') return stanza.getChild('store', NS.hints) ? 'store' : 'refuse';
  if (stanza.getChild('no-store', NS.hints)) return 'refuse';
  if (stanza.getChild('store', NS.hints)) return 'store';
  const meaningful = stanza.elements().some((c) =>
    c.ns !== NS.chatStates && c.ns !== NS.hints && !(c.name === 'thread' && c.ns === NS.client) && c.ns !== NS.delay);
  return meaningful ? 'store' : 'ignore';
}


/** The stanza as stored: a copy with the XEP-0203 delay that says when and where it was held. */
export function withOfflineDelay(stanza: Element, domain: string, now: Date): Element {
  const copy = stanza.clone();
  copy.attrs.xmlns = NS.client;
  copy.append(new Element('delay', { xmlns: NS.delay, from: domain, stamp: formatDateTimeSeconds(now) }));
  return copy;
}

export const offlineModule: Module = {
  name: MODULE,
  init(server: Server) {
    server.disco.hostFeatures.add('msgoffline');

    server.hooks.on('message/offline', async ({ stanza, to }) => {
      if (to.domain !== server.domain || !to.local) return false;
      if (!(await server.userExists(to.local))) return false; // the router bounces service-unavailable
      const decision = offlineDecision(stanza);
      if (decision === 'ignore') return true;
      if (decision === 'refuse') return false;
      const stored = withOfflineDelay(stanza, server.domain, new Date());
      const ok = await server.stores.offline.push(to.local, stored.toString(), server.config.limits.offlineMessages);
      // XEP-0160 §2: a full queue is answered with service-unavailable.
      if (!ok) server.router.bounce(stanza, new StanzaError('service-unavailable', 'offline storage is full'));
      return true;
    });

    const deliver = async (session: LocalSession): Promise<void> => {
      if (session.data.get(MODULE) === true || session.closed) return;
      session.data.set(MODULE, true);
      const queued = await server.stores.offline.take(session.username);
      for (const m of queued) {
        const el = parseStanzaString(m.stanza);
        if (!el) {
          server.log.warn('unreadable offline message dropped', { user: session.username, id: m.id });
          continue;
        }
        // Through the router's delivery, so filters apply and a session that just went re-routes
        // the message (back to offline storage when nobody else takes it).
        server.router.deliverTo(session.record, el, 'message');
      }
    };

    server.hooks.on('session/online', async (session) => {
      if (session.record.priority < 0) return false;
      // The initial presence's read counted nothing waiting: no take (a DELETE) at every login.
      if (sessionStartOf(session)?.offlineCount === 0) session.data.set(MODULE, true);
      else await deliver(session);
      return false;
    });

    // Also after the presence module has handled a broadcast presence, whichever fires first.
    server.hooks.on('client/presence', async ({ stanza, session }) => {
      // Unavailable again: messages stored meanwhile go out at the next available presence.
      if (stanza.attrs.type === 'unavailable') session.data.delete(MODULE);
      if (stanza.attrs.type !== undefined || session.data.get(MODULE) === true) return false;
      if (presencePriority(stanza) >= 0) await deliver(session);
      return false;
    }, -10);
  },
};

/** RFC 6121 §4.7.2.3: an integer from -128 to 127, 0 when absent or invalid. */
export function presencePriority(stanza: Element): number {
  const text = stanza.getChildText('priority', NS.client)?.trim();
  if (text === undefined || !/^[+-]?\d+$/.test(text)) return 0;
  const n = Number(text);
  return n >= -128 && n <= 127 ? n : 0;
}
