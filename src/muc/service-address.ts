// The MUC service's own JID (conference.<domain>): disco, the room list, ad-hoc commands, unique room
// names, ping, and whatever features register for a namespace. Rooms themselves are the service's.
import { randomBytes } from 'node:crypto';
import { Element } from '../../protocol/xml.js';
import { Jid, tryParseJid } from '../../protocol/jid.js';
import { StanzaError, errorReply } from '../../protocol/errors.js';
import { NS } from '../../protocol/namespaces.js';
import { MUC_NS } from '../../protocol/muc.js';
import { parseRsm, buildRsmResult } from '../../protocol/rsm.js';
import type { DataForm } from '../../protocol/forms.js';
import { buildForm } from '../../protocol/forms.js';
import type { Server } from '../context.js';
import type { RoomHooks, RoomLister } from './events.js';
import { commandItems, commandNodeInfo, handleCommandRequest } from '../commands/registry.js';

/** Answers an IQ to the service's own JID whose payload is in a registered namespace. */
export type ServiceIqHandler = (iq: { type: 'get' | 'set'; payload: Element; from: Jid; stanza: Element }) => Promise<Element>;

export class ServiceAddress {
  /** Handlers by payload namespace, registered by features (advertised in the service's disco#info). */
  readonly serviceIqs = new Map<string, ServiceIqHandler>();

  constructor(private readonly server: Server, private readonly domain: string, private readonly name: string, private readonly hooks: RoomHooks) {}

  /** Answers a stanza addressed to the service's own JID. */
  handle(stanza: Element, to: Jid): void {
    const from = tryParseJid(stanza.attrs.from ?? '');
    if (!from) return;
    const reply = (payload: Element) => {
      this.server.router.route(new Element('iq', { type: 'result', id: stanza.attrs.id ?? '', from: this.domain, to: from.toString() }).append(payload));
    };
    const fail = (e: unknown) => {
      const err = e instanceof StanzaError ? e : new StanzaError('internal-server-error');
      if (!(e instanceof StanzaError)) this.server.log.error('muc service request failed', { err: e });
      const r = errorReply(stanza, err);
      if (r) this.server.router.route(r);
    };
    if (stanza.name !== 'iq') {
      if (stanza.attrs.type !== 'error') fail(new StanzaError('service-unavailable'));
      return;
    }
    const type = stanza.attrs.type;
    if (type === 'result' || type === 'error') return;
    if (to.resource) return fail(new StanzaError('service-unavailable'));
    const payload = stanza.elements()[0];
    if (type === 'get' && payload?.is('query', NS.discoInfo) && !payload.attrs.node) {
      const q = new Element('query', { xmlns: NS.discoInfo });
      q.c('identity', { category: 'conference', type: 'text', name: this.name });
      const features: string[] = [NS.discoInfo, NS.discoItems, MUC_NS.muc, MUC_NS.occupantId, NS.rsm, NS.commands, ...this.serviceIqs.keys()];
      const forms: DataForm[] = [];
      try {
        this.hooks.build('service/disco-info', { from, features, forms });
      } catch (e) {
        return fail(e);
      }
      for (const f of features) q.c('feature', { var: f });
      for (const form of forms) q.append(buildForm(form));
      return reply(q);
    }
    // Ad-hoc commands registered for this service's JID (XEP-0050).
    if (type === 'set' && payload?.is('command', NS.commands)) {
      handleCommandRequest(this.server, this.domain, payload, from, to).then(reply, fail);
      return;
    }
    if (type === 'get' && payload?.is('query', NS.discoItems) && payload.attrs.node === NS.commands) {
      return reply(new Element('query', { xmlns: NS.discoItems, node: NS.commands }).append(...commandItems(this.server, this.domain, from)));
    }
    if (type === 'get' && payload?.is('query', NS.discoInfo) && payload.attrs.node) {
      try {
        const info = commandNodeInfo(this.server, this.domain, payload.attrs.node, from);
        if (info) return reply(info);
      } catch (e) {
        return fail(e);
      }
    }
    if (type === 'get' && payload?.is('query', NS.discoItems) && !payload.attrs.node) {
      this.listRooms(payload, from).then(reply, fail);
      return;
    }
    if (type === 'get' && payload?.is('unique', NS.mucUnique)) {
      return reply(new Element('unique', { xmlns: NS.mucUnique }).t(cryptoName()));
    }
    if (type === 'get' && payload?.is('ping', NS.ping)) {
      this.server.router.route(new Element('iq', { type: 'result', id: stanza.attrs.id ?? '', from: this.domain, to: from.toString() }));
      return;
    }
    // Other nodes, and other namespaces, go to what registered for them.
    const handler = payload && (type === 'get' || type === 'set') ? this.serviceIqs.get(payload.attrs.xmlns ?? '') : undefined;
    if (handler && payload && (type === 'get' || type === 'set')) {
      handler({ type, payload, from, stanza }).then(reply, fail);
      return;
    }
    fail(new StanzaError('service-unavailable'));
  }

  /** The public rooms as the store lists them (hidden and locked rooms are not in it), by localpart. */
  readonly publicRooms: RoomLister = {
    page: async (after, max) => {
      const rooms = await this.server.stores.rooms.list(this.domain, { publicOnly: true, after, limit: max });
      return rooms.map((r) => ({ name: r.name, title: typeof r.config.name === 'string' && r.config.name ? r.config.name : r.name }));
    },
    count: () => this.server.stores.rooms.count(this.domain, { publicOnly: true }),
  };

  /** The rooms listed to the requester (public ones unless a feature lists them), paged with XEP-0059 (after = room JID); count and index as the XEP asks. */
  private async listRooms(query: Element, from: Jid): Promise<Element> {
    const rsm = parseRsm(query.getChild('set', NS.rsm));
    const max = Math.min(rsm.max ?? 100, 500);
    const afterJid = typeof rsm.after === 'string' ? rsm.after : undefined;
    const after = afterJid ? (tryParseJid(afterJid)?.local ?? afterJid) : undefined;
    const lister = this.hooks.decide('service/room-list', { from }) ?? this.publicRooms;
    const page = await lister.page(after, max);
    const out = new Element('query', { xmlns: NS.discoItems });
    for (const r of page) out.c('item', { jid: `${r.name}@${this.domain}`, name: r.title });
    if (query.getChild('set', NS.rsm)) {
      // The size of the list itself.
      const count = await lister.count();
      const result: Parameters<typeof buildRsmResult>[0] = { count };
      if (page.length > 0) {
        result.first = { id: `${page[0]!.name}@${this.domain}` };
        result.last = `${page[page.length - 1]!.name}@${this.domain}`;
      }
      out.append(buildRsmResult(result));
    }
    return out;
  }
}

function cryptoName(): string {
  return `room-${randomBytes(6).toString('hex')}`;
}
