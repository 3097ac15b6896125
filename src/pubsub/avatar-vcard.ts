// XEP-0398, PEP to vCard: an XEP-0084 avatar published through PEP becomes the account's vCard photo,
// so that vCard-only clients see it and presence carries its hash (XEP-0153, added by the vcard
// module). The hash there is the SHA-1 of the image, which is also the XEP-0084 item id.
import type { Element } from '../../protocol/xml.js';
import { tryParseJid } from '../../protocol/jid.js';
import { NS } from '../../protocol/namespaces.js';
import { parseStoredXml } from '../modules/private.js';
import { setVcardPhoto } from '../modules/vcard.js';
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
  const stored = await setVcardPhoto(ps.server, username, { type: info.attrs.type ?? 'image/png', binval: data.text().replace(/\s+/g, '') });
  if (!stored) ps.server.log.info('avatar too large for the vCard; not converted', { account: service });
}
