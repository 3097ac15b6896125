// vcard-temp (XEP-0054): every account's vCard is public; only its owner may change it.
import { createHash } from 'node:crypto';
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { StanzaError } from '../../protocol/errors.js';
import type { Module, Server } from '../context.js';
import { parseStoredXml, storedXml } from './private.js';
import { SESSION_START_READ } from './session-start.js';

const KIND = 'vcard';
const KEY = 'current';
/** Largest vCard accepted, serialised (photos included). */
const MAX_VCARD_BYTES = 64 * 1024;

const PHOTO_KEY = 'vcard-photo';

/** SHA-1 of the vCard's photo, hex; empty when it has none (XEP-0153 §3.2). */
export function photoHash(card: Element): string {
  const binval = card.getChild('PHOTO')?.getChildText('BINVAL');
  if (!binval) return '';
  return createHash('sha1').update(Buffer.from(binval.replace(/\s+/g, ''), 'base64')).digest('hex');
}

function addUpdate(presence: Element, hash: string): void {
  const x = new Element('x', { xmlns: NS.vcardUpdate });
  const photo = x.c('photo');
  if (hash) photo.t(hash);
  presence.append(x);
}

/**
 * Sets (or with null removes) the account's vCard photo, keeping the rest of the card: the vCard side
 * of XEP-0398, when an avatar is published through PEP. False when the card would grow too large.
 */
export async function setVcardPhoto(server: Server, username: string, photo: { type: string; binval: string } | null): Promise<boolean> {
  const saved = await server.stores.userData.get(username, KIND, KEY);
  const card = (saved !== null ? parseStoredXml(saved) : null) ?? new Element('vCard', { xmlns: NS.vcard });
  const current = card.getChild('PHOTO');
  if (photo && current?.getChildText('TYPE') === photo.type && current.getChildText('BINVAL')?.replace(/\s+/g, '') === photo.binval) return true;
  card.removeChildren((c) => c.name === 'PHOTO');
  if (photo) {
    const el = card.c('PHOTO');
    el.c('TYPE').t(photo.type);
    el.c('BINVAL').t(photo.binval);
  }
  const xml = storedXml(card);
  if (Buffer.byteLength(xml, 'utf8') > MAX_VCARD_BYTES) return false;
  await server.stores.userData.put(username, KIND, KEY, xml);
  for (const session of server.localOf(`${username}@${server.domain}`)) session.data.set(PHOTO_KEY, photoHash(card));
  return true;
}

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
      for (const session of server.localOf(to.bareString())) session.data.set(PHOTO_KEY, photoHash(payload));
      await server.hooks.fire('vcard/stored', { username: to.local, card: payload });
      return null;
    });

    // XEP-0153: the server marks outgoing presence with the account's avatar hash, so that rooms and
    // contacts see it whatever the client; a client's own <x/> is left as it is. The card is read as
    // the session is bound (list, started before the block list's awaited read, so they share one
    // statement) and the hash kept; a new card replaces it (above).
    const photoOf = (username: string): Promise<string> => server.stores.userData.list(username, KIND).then((rows) => {
      const saved = rows.find((r) => r.key === KEY)?.value;
      const card = saved !== undefined ? parseStoredXml(saved) : null;
      return card ? photoHash(card) : '';
    });
    server.hooks.on('session/bound', (session) => {
      const reading = photoOf(session.username);
      session.data.set(PHOTO_KEY, reading);
      reading.then((hash) => { if (session.data.get(PHOTO_KEY) === reading) session.data.set(PHOTO_KEY, hash); },
        (e: unknown) => { if (session.data.get(PHOTO_KEY) === reading) session.data.delete(PHOTO_KEY); server.log.error('vCard read failed', { err: e }); });
      return false;
    }, SESSION_START_READ);
    server.hooks.on('client/stanza', ({ stanza, session }) => {
      if (stanza.name !== 'presence' || stanza.attrs.type !== undefined) return false;
      if (stanza.getChild('x', NS.vcardUpdate)) return false;
      const known = session.data.get(PHOTO_KEY);
      if (typeof known === 'string') {
        addUpdate(stanza, known);
        return false;
      }
      const reading = known instanceof Promise ? (known as Promise<string>) : photoOf(session.username);
      return reading.then((hash) => {
        if (session.data.get(PHOTO_KEY) === known) session.data.set(PHOTO_KEY, hash);
        addUpdate(stanza, hash);
        return false;
      });
    }, 10);

    server.disco.hostFeatures.add(NS.vcard);
    server.disco.accountFeatures.add(NS.vcard);
  },
};
