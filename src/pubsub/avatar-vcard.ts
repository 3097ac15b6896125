// XEP-0398 both ways. PEP to vCard (MUST): an XEP-0084 avatar published through PEP becomes the
// account's vCard photo, so that vCard-only clients see it and presence carries its hash (XEP-0153,
// added by the vcard module). vCard to PEP (MAY, done as Prosody and ejabberd do): a photo set through
// vcard-temp is published on the avatar nodes, so PEP-only clients see it. The hash in both is the
// SHA-1 of the image, which is also the XEP-0084 item id; a conversion whose result is already there
// does nothing, so the two directions do not feed each other.
import { createHash } from 'node:crypto';
import { Element } from '../../protocol/xml.js';
import { tryParseJid } from '../../protocol/jid.js';
import { NS } from '../../protocol/namespaces.js';
import { parseStoredXml } from '../modules/private.js';
import { photoHash, setVcardPhoto } from '../modules/vcard.js';
import type { Server } from '../context.js';
import type { PubsubHost } from './host.js';

export const AVATAR_METADATA = NS.avatarMetadata;
export const AVATAR_DATA = NS.avatarData;
export const CONVERSION_FEATURE = NS.pepVcardConversion;

export async function avatarToVcard(ps: PubsubHost, service: string, node: string, payload: Element | null): Promise<void> {
  if (node !== AVATAR_METADATA || !payload || payload.name !== 'metadata' || payload.ns !== AVATAR_METADATA) return;
  const username = tryParseJid(service)?.local;
  if (!username) return;
  // An empty <metadata/> disables the avatar (XEP-0084 §4.2).
  const info = payload.getChildren('info', AVATAR_METADATA).find((i) => i.attrs.url === undefined && i.attrs.id);
  if (!info) {
    if (payload.elements().length === 0) await setVcardPhoto(ps.server, username, null);
    return;
  }
  const [item] = await ps.pep.store.items(service, AVATAR_DATA, { ids: [info.attrs.id!] });
  const data = item?.payload ? parseStoredXml(item.payload) : null;
  if (!data || data.name !== 'data') return;
  // XEP-0398 §3.1: the image should hash to the id the metadata announces.
  const binval = data.text().replace(/\s+/g, '');
  if (sha1Hex(binval) !== info.attrs.id) {
    ps.server.log.info('avatar data does not hash to its metadata id; not converted', { account: service });
    return;
  }
  const stored = await setVcardPhoto(ps.server, username, { type: info.attrs.type ?? 'image/png', binval });
  if (!stored) ps.server.log.info('avatar too large for the vCard; not converted', { account: service });
}

function sha1Hex(base64: string): string {
  return createHash('sha1').update(Buffer.from(base64, 'base64')).digest('hex');
}

/** vCard to PEP: the data item first, then the metadata pointing at it (XEP-0398 §3.2). */
export async function vcardToAvatar(ps: PubsubHost, username: string, card: Element): Promise<void> {
  const photo = card.getChild('PHOTO');
  const binval = photo?.getChildText('BINVAL')?.replace(/\s+/g, '');
  if (!photo || !binval) return;
  const id = photoHash(card);
  const service = `${username}@${ps.server.domain}`;
  const [current] = await ps.pep.store.items(service, AVATAR_METADATA, { max: 1 });
  const currentInfo = current?.payload ? parseStoredXml(current.payload)?.getChild('info', AVATAR_METADATA) : undefined;
  if (currentInfo?.attrs.id === id) return;
  const data = new Element('data', { xmlns: AVATAR_DATA }).t(binval);
  const metadata = new Element('metadata', { xmlns: AVATAR_METADATA });
  metadata.c('info', { id, bytes: String(Buffer.from(binval, 'base64').length), type: photo.getChildText('TYPE') ?? 'image/png' });
  for (const [node, payload] of [[AVATAR_DATA, data], [AVATAR_METADATA, metadata]] as const) {
    const r = await ps.pep.publish(service, node, service, { id, publisher: service, payload }, null);
    await ps.broadcast(ps.pep, service, r.node, () => {
      const ev = new Element('items', { node });
      ev.c('item', { id, publisher: service }).append(payload.clone());
      return ev;
    });
  }
}

export function initVcardToAvatar(server: Server, ps: PubsubHost): void {
  server.hooks.on('vcard/stored', async ({ username, card }) => {
    try {
      await vcardToAvatar(ps, username, card);
    } catch (e) {
      server.log.error('vCard avatar conversion to PEP failed', { err: e, account: username });
    }
  });
}
