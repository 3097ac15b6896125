// HTTP File Upload (XEP-0363 v1.1): the slot request (with our room child in urn:x-perch:upload:0),
// the slot reply, the service's disco#info form and the errors the XEP names.
import { Element } from './xml.js';
import { NS } from './namespaces.js';
import { StanzaError } from './errors.js';
import { buildForm } from './forms.js';

export const UPLOAD_NS = NS.httpUpload;
/** Our child naming the room a file is for: <room xmlns='urn:x-perch:upload:0' jid='room@service'/>. */
export const UPLOAD_ROOM_NS = NS.uploadRoom;

export interface SlotRequest {
  filename: string;
  /** Bytes, a positive integer. */
  size: number;
  /** The MIME type as asked for, lower-cased; application/octet-stream when the client gave none. */
  contentType: string;
  /** The room's JID as written, when the request names one. */
  room: string | null;
}

const MAX_FILENAME = 255;
// RFC 9110 token characters: a type/subtype with optional parameters is kept whole.
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const MIME = new RegExp(`^${TOKEN}/${TOKEN}(\\s*;\\s*${TOKEN}=(${TOKEN}|"[^"\\\\\\r\\n]*"))*$`);

/**
 * Reads the slot request from the IQ's payload (the <request/>); the room child is taken from inside
 * the request or beside it in the IQ. Throws bad-request (StanzaError) for what the client must fix.
 */
export function parseSlotRequest(iq: Element): SlotRequest {
  const req = iq.getChild('request', UPLOAD_NS);
  if (!req) throw new StanzaError('bad-request', 'no request element');
  const filename = req.attrs.filename ?? '';
  if (filename === '') throw new StanzaError('bad-request', 'the request has no filename');
  if (filename.length > MAX_FILENAME) throw new StanzaError('bad-request', `the filename is longer than ${MAX_FILENAME} characters`);
  if (/[/\\]/.test(filename) || filename === '.' || filename === '..') throw new StanzaError('bad-request', 'the filename must not contain path separators');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(filename)) throw new StanzaError('bad-request', 'the filename must not contain control characters');
  const sizeText = req.attrs.size ?? '';
  if (!/^[1-9][0-9]{0,15}$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    throw new StanzaError('bad-request', 'size must be a positive integer (bytes)');
  }
  const rawType = (req.attrs['content-type'] ?? '').trim();
  if (rawType !== '' && !MIME.test(rawType)) throw new StanzaError('bad-request', 'content-type is not a MIME type');
  const roomEl = req.getChild('room', UPLOAD_ROOM_NS) ?? iq.getChild('room', UPLOAD_ROOM_NS);
  let room: string | null = null;
  if (roomEl) {
    room = roomEl.attrs.jid ?? '';
    if (room === '') throw new StanzaError('bad-request', 'the room element has no jid');
  }
  return { filename, size: Number(sizeText), contentType: rawType === '' ? 'application/octet-stream' : rawType.toLowerCase(), room };
}

/** The slot: where to PUT (with optional headers, XEP-0363 §5: Authorization, Cookie, Expires) and where to GET. */
export function buildSlot(put: string, get: string, headers: Record<string, string> = {}): Element {
  const slot = new Element('slot', { xmlns: UPLOAD_NS });
  const p = slot.c('put', { url: put });
  for (const [name, value] of Object.entries(headers)) p.c('header', { name }).t(value.replace(/[\r\n]/g, ''));
  slot.c('get', { url: get });
  return slot;
}

/** The file is larger than the service takes: not-acceptable with <file-too-large/> and the maximum (bytes). */
export function fileTooLarge(maxBytes: number, text?: string): StanzaError {
  const app = new Element('file-too-large', { xmlns: UPLOAD_NS });
  app.c('max-file-size').t(String(maxBytes));
  return new StanzaError('not-acceptable', text ?? `the file is larger than the maximum of ${maxBytes} bytes`, 'modify', app);
}

/** A quota is used up: resource-constraint (wait), with <retry stamp/> when the service knows when room is freed. */
export function quotaReached(text: string, retryAt: Date | null): StanzaError {
  const app = retryAt ? new Element('retry', { xmlns: UPLOAD_NS, stamp: retryAt.toISOString().replace(/\.\d{3}Z$/, 'Z') }) : undefined;
  return new StanzaError('resource-constraint', text, 'wait', app);
}

/** The XEP-0128 form on the service's disco#info (XEP-0363 §3): the largest file in bytes. */
export function uploadInfoForm(maxBytes: number): Element {
  return buildForm({
    type: 'result',
    fields: [
      { var: 'FORM_TYPE', type: 'hidden', values: [UPLOAD_NS] },
      { var: 'max-file-size', values: [String(maxBytes)] },
    ],
  });
}

/** The service's disco#info <query/>: identity store/file, the upload feature and the form. */
export function uploadDiscoInfo(name: string, maxBytes: number): Element {
  const q = new Element('query', { xmlns: NS.discoInfo });
  q.c('identity', { category: 'store', type: 'file', name });
  q.c('feature', { var: NS.discoInfo });
  q.c('feature', { var: UPLOAD_NS });
  q.append(uploadInfoForm(maxBytes));
  return q;
}
