// The upload service's XMPP face on upload.<domain>: disco#info (identity store/file, the XEP-0363
// feature and the max-file-size form), disco#items (none) and slot requests. A slot names a room
// (our <room xmlns='urn:x-perch:upload:0'/>) or none (a personal upload for one-to-one chats).
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { tryParseJid, type Jid } from '../../protocol/jid.js';
import { StanzaError } from '../../protocol/errors.js';
import { UPLOAD_NS, buildSlot, fileTooLarge, parseSlotRequest, quotaReached, uploadDiscoInfo } from '../../protocol/http-upload.js';
import type { Server } from '../context.js';
import { largestRoomFile, roomForUpload } from './rooms.js';
import { getUrl, newId, newToken, putUrl, type UploadRuntime } from './runtime.js';

const MB = 1024 * 1024;

/** The largest file the service takes anywhere: the personal limit or a room service's, whichever is larger. */
export function advertisedMaxBytes(server: Server): number {
  return Math.max(server.config.upload.maxFileSizeKb * 1024, largestRoomFile(server));
}

/** Grants a slot or throws the StanzaError the XEP names. */
export async function requestSlot(server: Server, rt: UploadRuntime, from: Jid, iq: Element): Promise<Element> {
  const cfg = server.config.upload;
  if (from.domain !== server.domain || !from.local) throw new StanzaError('forbidden', 'only accounts of this server may upload files');
  let req;
  try {
    req = parseSlotRequest(iq);
  } catch (e) {
    rt.metrics.refused('bad-request');
    throw e;
  }
  const owner = from.bareString();
  let maxBytes = cfg.maxFileSizeKb * 1024;
  let room: string | null = null;
  if (req.room !== null) {
    const verdict = await roomForUpload(server, req.room, owner);
    if (!verdict.ok) {
      rt.metrics.refused(verdict.reason);
      throw verdict.error;
    }
    room = verdict.room;
    maxBytes = verdict.maxBytes;
  }
  if (req.size > maxBytes) {
    rt.metrics.refused('too-large');
    throw fileTooLarge(maxBytes, `the file is ${req.size} bytes; ${room ? 'this room takes' : 'the service takes'} at most ${maxBytes}`);
  }
  const file = {
    id: newId(), token: newToken(), putToken: newToken(), owner, room, name: req.filename, contentType: req.contentType,
    size: req.size, expiresAt: new Date(Date.now() + cfg.slotSeconds * 1000),
  };
  const r = await server.stores.uploads.reserve(file, {
    user: cfg.quotaPerUserMb === null ? null : Math.floor(cfg.quotaPerUserMb * MB),
    service: cfg.quotaPerServiceMb === null ? null : Math.floor(cfg.quotaPerServiceMb * MB),
  });
  if (!r.ok) {
    rt.metrics.refused(r.quota === 'user' ? 'quota-user' : 'quota-service');
    const whose = r.quota === 'user' ? 'your upload quota' : "the service's upload quota";
    throw quotaReached(`${whose} is used up (${r.used} bytes held); delete files or wait for pending uploads to lapse`, r.retryAt);
  }
  rt.metrics.slots.inc();
  return buildSlot(putUrl(rt.base, file), getUrl(rt.base, file));
}

/** Answers every stanza sent to the service's JID. */
export function uploadStanzaHandler(server: Server, rt: UploadRuntime): (stanza: Element) => void {
  const name = 'HTTP File Upload';
  return (stanza) => {
    if (stanza.name !== 'iq') {
      if (stanza.name === 'message' && stanza.attrs.type !== 'error') server.router.bounce(stanza, new StanzaError('service-unavailable'));
      return;
    }
    const type = stanza.attrs.type;
    if (type !== 'get' && type !== 'set') return;
    const from = tryParseJid(stanza.attrs.from ?? '');
    const payload = stanza.elements()[0];
    if (!from || !payload) { server.router.bounce(stanza, new StanzaError('bad-request')); return; }
    const answer = async (): Promise<Element | null> => {
      if (type === 'get' && payload.is('query', NS.discoInfo) && !payload.attrs.node) return uploadDiscoInfo(name, advertisedMaxBytes(server));
      if (type === 'get' && payload.is('query', NS.discoItems) && !payload.attrs.node) return new Element('query', { xmlns: NS.discoItems });
      if (type === 'get' && payload.is('request', UPLOAD_NS)) return requestSlot(server, rt, from, stanza);
      throw new StanzaError('service-unavailable');
    };
    answer().then((result) => {
      const reply = new Element('iq', { type: 'result', id: stanza.attrs.id ?? '', from: rt.domain, to: stanza.attrs.from! });
      if (result) reply.append(result);
      server.router.route(reply);
    }, (e: unknown) => {
      if (!(e instanceof StanzaError)) server.log.error('upload: slot request failed', { err: e });
      server.router.bounce(stanza, e instanceof StanzaError ? e : new StanzaError('internal-server-error'));
    });
  };
}
