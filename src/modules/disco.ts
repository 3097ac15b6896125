// Service discovery (XEP-0030) for the server and its accounts, and the server's own entity
// capabilities (XEP-0115) announced in the post-authentication stream features.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { StanzaError } from '../../protocol/errors.js';
import { capsElement, capsVerOfQuery } from '../../protocol/caps.js';
import type { Module, Server } from '../context.js';

export const CAPS_NODE = 'https://perch.example/caps';

/** The server's disco#info answer (without a node), built fresh from the registry. */
function hostInfo(server: Server, node?: string): Element {
  const q = new Element('query', node !== undefined ? { xmlns: NS.discoInfo, node } : { xmlns: NS.discoInfo });
  for (const id of server.disco.hostIdentities) {
    const attrs: Record<string, string> = { category: id.category, type: id.type };
    if (id.name !== undefined) attrs.name = id.name;
    q.c('identity', attrs);
  }
  for (const f of [...server.disco.hostFeatures].sort()) q.c('feature', { var: f });
  for (const form of server.disco.hostForms) q.append(form());
  return q;
}

/**
 * The 'ver' of the server's capabilities, computed on first use (every module has registered its
 * features by then) and again only when the registry grows.
 */
class ServerCaps {
  private key = '';
  private ver = '';
  constructor(private readonly server: Server) {}

  current(): string {
    const d = this.server.disco;
    const key = `${d.hostIdentities.length}/${d.hostFeatures.size}/${d.hostForms.length}`;
    if (key !== this.key) {
      try {
        this.ver = capsVerOfQuery(hostInfo(this.server));
      } catch (e) {
        // A malformed extension form must not break stream negotiation; the old ver stays.
        this.server.log.warn('cannot compute the server caps', { err: e });
      }
      this.key = key;
    }
    return this.ver;
  }
}

export const discoModule: Module = {
  name: 'disco',
  init(server) {
    const caps = new ServerCaps(server);
    server.disco.accountFeatures.add(NS.discoInfo);
    server.disco.accountFeatures.add(NS.discoItems);

    server.iq('host', NS.discoInfo, 'get', ({ payload, from }) => {
      const node = payload.attrs.node;
      if (node === undefined || node === '') return hostInfo(server);
      // XEP-0115 §6.2: the caps node answers exactly what the node-less query does.
      if (node === `${CAPS_NODE}#${caps.current()}`) return hostInfo(server, node);
      const info = server.disco.nodes.get(node)?.info?.(from);
      if (!info) throw new StanzaError('item-not-found');
      return info;
    });

    server.iq('host', NS.discoItems, 'get', ({ payload, from }) => {
      const node = payload.attrs.node;
      if (node === undefined || node === '') {
        const q = new Element('query', { xmlns: NS.discoItems });
        for (const item of server.disco.hostItems) {
          q.c('item', item.name !== undefined ? { jid: item.jid, name: item.name } : { jid: item.jid });
        }
        return q;
      }
      const handler = server.disco.nodes.get(node);
      if (!handler?.items) throw new StanzaError('item-not-found');
      return new Element('query', { xmlns: NS.discoItems, node }).append(...handler.items(from));
    });

    // An account's bare JID: the server answers on its behalf (RFC 6121 §8.5.1), to anyone (the
    // dispatcher has already refused queries about accounts that do not exist).
    server.iq('account', NS.discoInfo, 'get', ({ payload }) => {
      if (payload.attrs.node !== undefined && payload.attrs.node !== '') throw new StanzaError('item-not-found');
      const q = new Element('query', { xmlns: NS.discoInfo });
      q.c('identity', { category: 'account', type: 'registered' });
      for (const id of server.disco.accountIdentities) q.c('identity', id.name ? { category: id.category, type: id.type, name: id.name } : { category: id.category, type: id.type });
      for (const f of [...server.disco.accountFeatures].sort()) q.c('feature', { var: f });
      return q;
    });

    server.iq('account', NS.discoItems, 'get', async ({ payload, to, from }) => {
      if (payload.attrs.node !== undefined && payload.attrs.node !== '') throw new StanzaError('item-not-found');
      const q = new Element('query', { xmlns: NS.discoItems });
      for (const provider of server.disco.accountItems) q.append(...await provider(to.bare(), from));
      return q;
    });

    // The hook chain is fired without waiting, so this handler stays synchronous.
    server.hooks.on('stream/features', ({ session }) => {
      if (session.authenticated) session.features.append(capsElement(CAPS_NODE, caps.current()));
    });
  },
};
