// Private XML storage (XEP-0049): each child of the query is stored under its qualified name,
// readable and writable only by the account that owns it.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { StanzaError } from '../../protocol/errors.js';
import { XmlStreamParser } from '../../protocol/xml-stream.js';
import type { Module } from '../context.js';

const KIND = 'private';
/** Namespaces whose elements make no sense as private data (XEP-0049 §3: not-acceptable). */
const REFUSED = new Set<string>([NS.private, NS.client, NS.server]);

/** The element as stored: its namespace declared on the root so that it parses back alone. */
export function storedXml(el: Element): string {
  const copy = el.clone();
  copy.attrs.xmlns = el.ns;
  return copy.toString();
}

/** Parses an element stored with storedXml; null when the stored text is not one element. */
export function parseStoredXml(xml: string): Element | null {
  let out: Element | null = null;
  const parser = new XmlStreamParser({
    streamStart: () => {}, stanza: (el) => { out ??= el; }, streamEnd: () => {}, error: () => {},
  }, { maxStanzaSize: Number.MAX_SAFE_INTEGER, maxDepth: 1000 });
  parser.write(`<stream:stream xmlns='${NS.client}' xmlns:stream='${NS.streams}'>`);
  parser.write(xml);
  return out;
}

/** An element with nothing in it: storing it is the same as storing nothing. */
function isEmpty(el: Element): boolean {
  return el.children.every((c) => typeof c === 'string' && c.trim() === '') &&
    Object.keys(el.attrs).every((k) => k === 'xmlns' || k.startsWith('xmlns:'));
}

export const privateModule: Module = {
  name: 'private',
  init(server) {
    server.iq('account', NS.private, 'both', async ({ stanza, payload, from, to }) => {
      // XEP-0049 §3: another user's data is forbidden (preferred over service-unavailable).
      if (from.bareString() !== to.bareString()) throw new StanzaError('forbidden');
      const children = payload.elements();
      if (children.length === 0) throw new StanzaError('not-acceptable', 'name the element to store or retrieve');
      for (const c of children) {
        if (REFUSED.has(c.ns)) throw new StanzaError('not-acceptable', `${c.ns || 'no namespace'} is reserved`);
      }
      const username = to.local;
      const result = new Element('query', { xmlns: NS.private });
      for (const c of children) {
        const key = `{${c.ns}}${c.name}`;
        if (stanza.attrs.type === 'get') {
          const saved = await server.stores.userData.get(username, KIND, key);
          const el = saved !== null ? parseStoredXml(saved) : null;
          result.append(el ?? new Element(c.name, { xmlns: c.ns }));
        } else if (isEmpty(c)) {
          await server.stores.userData.delete(username, KIND, key);
        } else {
          await server.stores.userData.put(username, KIND, key, storedXml(c));
          await server.hooks.fire('private/stored', { username, element: c });
        }
      }
      return stanza.attrs.type === 'get' ? result : null;
    });
    server.disco.hostFeatures.add(NS.private);
  },
};
