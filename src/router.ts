// Routing rules of RFC 6120 §10 and RFC 6121 §8 for stanzas whose from/to are already trusted.
// Local sessions, sessions on other nodes, components and internal services are all just
// destinations: a session record (this node or another) or a domain handler.
import { Element } from '../protocol/xml.js';
import { tryParseJid, type Jid } from '../protocol/jid.js';
import { StanzaError, errorReply } from '../protocol/errors.js';
import type { SessionRecord } from '../storage/types.js';
import type { Router, Server, StanzaEvent } from './context.js';
import { hold, continueWith } from './streams/completion.js';

export interface RouterDeps {
  server: Server;
  /** Delivers to a local session; false when there is no such session. */
  deliverLocal(full: string, stanza: Element | string, name: string): boolean;
  /** Sends a serialised stanza to another node for one of its sessions. */
  forward(node: string, full: string, xml: string): void;
  /** Handles an IQ addressed to the host or a local account. */
  handleIq(stanza: Element, from: Jid, to: Jid): void;
}

/** Presence types the recipient's server processes itself (RFC 6121 §3, §4.3) rather than delivers. */
const SERVER_HANDLED_PRESENCE = new Set(['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed', 'probe']);

export class StanzaRouter implements Router {
  private readonly domains = new Map<string, (stanza: Element) => void>();

  constructor(private readonly deps: RouterDeps) {}

  addDomain(domain: string, handler: (stanza: Element) => void): void {
    this.domains.set(domain, handler);
  }
  removeDomain(domain: string): void {
    this.domains.delete(domain);
  }
  isLocalDomain(domain: string): boolean {
    return domain === this.deps.server.domain || this.findDomain(domain) !== undefined;
  }

  /** A domain handler for the domain or, for components, a parent domain (subdomain JIDs). */
  private findDomain(domain: string): ((stanza: Element) => void) | undefined {
    const exact = this.domains.get(domain);
    if (exact) return exact;
    for (let i = domain.indexOf('.'); i !== -1; i = domain.indexOf('.', i + 1)) {
      const h = this.domains.get(domain.slice(i + 1));
      if (h) return h;
    }
    return undefined;
  }

  bounce(stanza: Element, err: StanzaError): void {
    const reply = errorReply(stanza, err);
    if (reply) this.route(reply);
  }

  route(stanza: Element): void {
    // A handler that throws refuses this stanza only (internal-server-error, or the StanzaError it
    // threw); the router, the sender's session and the node go on.
    try {
      this.dispatch(stanza);
    } catch (e) {
      this.failed(stanza, e);
    }
  }

  private dispatch(stanza: Element): void {
    const server = this.deps.server;
    const from = tryParseJid(stanza.attrs.from ?? '');
    const toAttr = stanza.attrs.to;
    const to = toAttr === undefined ? null : tryParseJid(toAttr);
    if (!from) return; // only trusted code calls route; a bad from here is a bug upstream
    if (!to) {
      this.bounce(stanza, new StanzaError('jid-malformed', 'invalid recipient address'));
      return;
    }
    if (to.domain === server.domain) {
      if (!to.local) return this.toHost(stanza, from, to);
      if (!to.resource) return this.toBare(stanza, from, to);
      return this.toFull(stanza, from, to);
    }
    const handler = this.findDomain(to.domain);
    if (handler) return handler(stanza);
    this.bounce(stanza, new StanzaError('remote-server-not-found', `no route to ${to.domain}`));
  }

  private toHost(stanza: Element, from: Jid, to: Jid): void {
    const hooks = this.deps.server.hooks;
    const ev: StanzaEvent = { stanza, from, to };
    switch (stanza.name) {
      case 'iq':
        if (to.resource) {
          this.bounce(stanza, new StanzaError('service-unavailable'));
          return;
        }
        this.deps.handleIq(stanza, from, to);
        return;
      case 'message':
      case 'presence': {
        const r = hooks.fire(stanza.name === 'message' ? 'message/host' : 'presence/host', ev);
        if (r instanceof Promise) r.catch((e: unknown) => this.fail(ev, e));
        return;
      }
    }
  }

  private toBare(stanza: Element, from: Jid, to: Jid): void {
    const server = this.deps.server;
    if (stanza.name === 'iq') {
      this.deps.handleIq(stanza, from, to);
      return;
    }
    const ev: StanzaEvent = { stanza, from, to };
    if (stanza.name === 'message') {
      const r = server.hooks.fire('message/bare', ev);
      if (r === true) return;
      if (r === false) this.deliverMessageToBare(ev);
      else this.after(ev, r, () => this.deliverMessageToBare(ev));
      return;
    }
    if (stanza.name === 'presence') {
      const r = server.hooks.fire('presence/bare', ev);
      if (r === true) return;
      if (r === false) this.deliverPresenceToBare(ev);
      else this.after(ev, r, () => this.deliverPresenceToBare(ev));
    }
  }

  /**
   * Runs next once the hooks' promise says nobody consumed the stanza; the stanza's handling (what
   * XEP-0198 acknowledges) completes after that, or after the error it is answered with.
   */
  private after(ev: StanzaEvent, r: Promise<boolean>, next: () => void): void {
    const release = hold(ev.stanza);
    void r.then((done) => {
      if (!done) continueWith(ev.stanza, release, next);
      else release?.();
    }, (e) => {
      this.fail(ev, e);
      release?.();
    });
  }

  private fail(ev: StanzaEvent, e: unknown): void {
    this.failed(ev.stanza, e);
  }

  private failed(stanza: Element, e: unknown): void {
    if (e instanceof StanzaError) return this.bounce(stanza, e);
    this.deps.server.log.error('routing failed', { err: e, stanza: stanza.name, to: stanza.attrs.to });
    this.deps.server.metrics.handlerErrors.inc({ where: 'route' });
    try {
      this.bounce(stanza, new StanzaError('internal-server-error'));
    } catch (again) {
      this.deps.server.log.error('bouncing a failed stanza failed too', { err: again });
    }
  }

  /** RFC 6121 §8.5.2.1: chat/normal/headline go to every available resource of non-negative priority. */
  deliverMessageToBare(ev: StanzaEvent): void {
    const { stanza, to } = ev;
    const type = stanza.attrs.type ?? 'normal';
    if (type === 'groupchat' || type === 'error') {
      if (type === 'groupchat') this.bounce(stanza, new StanzaError('service-unavailable'));
      return;
    }
    const targets = this.deps.server.sessions.resources(to.bareString()).filter((r) => r.available && r.priority >= 0);
    if (targets.length === 0) {
      if (type === 'headline') return;
      const r = this.deps.server.hooks.fire('message/offline', ev);
      const unhandled = () => this.bounce(stanza, new StanzaError('service-unavailable'));
      if (r === false) unhandled();
      else if (r !== true) this.after(ev, r, unhandled);
      return;
    }
    const xml = targets.length > 1 ? stanza.toString() : null;
    for (const rec of targets) this.deliverFull(rec, stanza, xml, ev.from);
  }

  /** Default presence delivery: broadcast to every available resource (RFC 6121 §8.5.2.1.1). */
  private deliverPresenceToBare(ev: StanzaEvent): void {
    const type = ev.stanza.attrs.type;
    if (type !== undefined && type !== 'unavailable' && type !== 'error') return;
    const targets = this.deps.server.sessions.resources(ev.to.bareString()).filter((r) => r.available);
    const xml = targets.length > 1 ? ev.stanza.toString() : null;
    for (const rec of targets) this.deliverTo(rec, xml ?? ev.stanza, 'presence');
  }

  private deliverFull(rec: SessionRecord, stanza: Element, xml: string | null, from: Jid): void {
    const to = tryParseJid(rec.jid)!;
    const ev: StanzaEvent = { stanza, from, to };
    const r = this.deps.server.hooks.has('message/full') ? this.deps.server.hooks.fire('message/full', ev) : false;
    if (r === false) this.deliverTo(rec, xml ?? stanza, stanza.name);
    // Asynchronous when the recipient's archive must hold the message first (XEP-0313).
    else if (r !== true) this.after(ev, r, () => this.deliverTo(rec, xml ?? stanza, stanza.name));
  }

  private toFull(stanza: Element, from: Jid, to: Jid): void {
    // RFC 6121 §8.5.3.1: subscription stanzas and probes are the server's business, as for the bare JID.
    if (stanza.name === 'presence' && SERVER_HANDLED_PRESENCE.has(stanza.attrs.type ?? '')) return this.toBare(stanza, from, to.bare());
    const rec = this.deps.server.sessions.get(to.toString());
    if (rec) {
      if (stanza.name === 'message') this.deliverFull(rec, stanza, null, from);
      else this.deliverTo(rec, stanza, stanza.name);
      return;
    }
    this.noSuchResource(stanza, from, to);
  }

  /** RFC 6121 §8.5.3.2: the full JID has no session. */
  noSuchResource(stanza: Element, from: Jid, to: Jid): void {
    const type = stanza.attrs.type;
    if (stanza.name === 'message') {
      if (type === 'groupchat' || type === 'headline' || type === 'error') return;
      this.toBare(stanza, from, to.bare());
    } else if (stanza.name === 'presence') {
      if (SERVER_HANDLED_PRESENCE.has(type ?? '')) this.toBare(stanza, from, to.bare());
    } else if (stanza.name === 'iq') {
      if (type === 'get' || type === 'set') this.bounce(stanza, new StanzaError('service-unavailable'));
    }
  }

  deliverTo(rec: SessionRecord, stanza: Element | string, name: string): void {
    const server = this.deps.server;
    if (rec.node === server.sessions.nodeId) {
      if (this.deps.deliverLocal(rec.jid, stanza, name)) return;
      // The mirror said here, but the session just went: route again as for an absent resource.
      const el = typeof stanza === 'string' ? null : stanza;
      if (el) {
        const from = tryParseJid(el.attrs.from ?? '');
        const to = tryParseJid(rec.jid);
        if (from && to) this.noSuchResource(el, from, to);
      }
      return;
    }
    this.deps.forward(rec.node, rec.jid, typeof stanza === 'string' ? stanza : stanza.toString());
  }
}
