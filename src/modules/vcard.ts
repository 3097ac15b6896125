// vcard-temp (XEP-0054): every account's vCard is public; only its owner may change it.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { StanzaError } from '../../protocol/errors.js';
import type { Module } from '../context.js';
import { parseStoredXml, storedXml } from './private.js';

const KIND = 'vcard';
const KEY = 'current';
/** Largest vCard accepted, serialised (photos included). */
const MAX_VCARD_BYTES = 64 * 1024;

export const vcardModule: Module = {
  name: 'vcard',
  init(server) {
    server.iq('account', NS.vcard, 'get', async ({ payload, to }) => {
      if (payload.name !== 'vCard') throw new StanzaError('bad-request');
      const saved = await server.stores.userData.get(to.local, KIND, KEY);
      // XEP-0054 §3.1: without a stored vCard, an empty one (the alternative is item-not-found).
      return (saved !== null ? parseStoredXml(saved) : null) ?? new Element('vCard', { xmlns: NS.vcard });
    });

    server.iq('account', NS.vcard, 'set', async ({ payload, from, to }) => {
      if (payload.name !== 'vCard') throw new StanzaError('bad-request');
      if (from.bareString() !== to.bareString()) throw new StanzaError('forbidden', 'only the owner may change a vCard');
      if (payload.elements().length === 0) {
        await server.stores.userData.delete(to.local, KIND, KEY);
        return null;
      }
      const xml = storedXml(payload);
      if (Buffer.byteLength(xml, 'utf8') > MAX_VCARD_BYTES) {
        throw new StanzaError('policy-violation', `a vCard may not exceed ${MAX_VCARD_BYTES / 1024} KiB`);
      }
      await server.stores.userData.put(to.local, KIND, KEY, xml);
      return null;
    });

    server.disco.hostFeatures.add(NS.vcard);
    server.disco.accountFeatures.add(NS.vcard);
  },
};
