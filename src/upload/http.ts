// The upload service's HTTPS face: PUT stores a slot's bytes, GET and HEAD serve a stored file, OPTIONS
// answers CORS preflights. URLs are https://host:port/upload/<id>/<token>/<name>: the token is the
// capability (a PUT token while the slot is open, the GET token for ever after), and a wrong one is
// a plain 404, whether or not the id exists.
import https from 'node:https';
import type http from 'node:http';
import { pipeline } from 'node:stream/promises';
import { verifyPasswordAgainstScram } from '../../protocol/sasl.js';
import { BlobSizeError } from '../../storage/blobs-fs.js';
import type { ComplianceEvent, UploadFile } from '../../storage/types.js';
import type { Server } from '../context.js';
import { normalizeUsername } from '../accounts.js';
import { complianceState } from '../compliance/state.js';
import { mayReadRoom } from './rooms.js';
import { sameToken, storedName, type Refusal, type UploadRuntime } from './runtime.js';

/** Types a browser may show in the page: everything else is offered as a download. */
const INLINE = /^(image\/(png|jpeg|gif|webp|avif|bmp)|audio\/[a-z0-9.+-]+|video\/[a-z0-9.+-]+|application\/pdf)$/;

const CORS: Record<string, string> = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, PUT, OPTIONS',
  'access-control-allow-headers': 'Authorization, Content-Type',
  'access-control-expose-headers': 'Content-Length, Content-Range, Content-Disposition, ETag',
  'access-control-max-age': '86400',
};

/** The MIME type without parameters, lower-cased. */
const essence = (type: string): string => type.split(';')[0]!.trim().toLowerCase();

/** RFC 6266: an ASCII fallback name and the exact one in RFC 8187 encoding. */
export function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%;]/g, '_');
  const exact = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${exact}`;
}

/** One byte range of a file of this size: null when the header asks for none (or for several, or garbles it); 'unsatisfiable' when it starts past the end. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

export class UploadHttp {
  /** Slots a PUT is writing now on this node: a second concurrent PUT is a conflict. */
  private readonly writing = new Set<string>();
  readonly server: https.Server;

  constructor(private readonly core: Server, private readonly rt: UploadRuntime, tls: { cert: Buffer; key: Buffer }) {
    this.server = https.createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        core.log.error('upload: request failed', { err, method: req.method });
        if (!res.headersSent) this.fail(res, 500, 'internal error');
        else res.destroy();
      });
    });
    // A slow client is held no longer than this per request (headers and body).
    this.server.requestTimeout = 10 * 60_000;
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        const a = this.server.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private fail(res: http.ServerResponse, status: number, text: string, headers: Record<string, string> = {}, reason?: Refusal): void {
    if (reason) this.rt.metrics.refused(reason);
    res.writeHead(status, { ...CORS, 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff', ...headers });
    res.end(`${text}\n`);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const m = /^\/upload\/([A-Za-z0-9_-]{8,64})\/([A-Za-z0-9_-]{16,128})\/[^/?#]*(?:\?.*)?$/.exec(req.url ?? '');
    if (req.method === 'OPTIONS') {
      res.writeHead(204, CORS).end();
      return;
    }
    if (!m) { this.fail(res, 404, 'not found'); return; }
    const [, id, token] = m as unknown as [string, string, string];
    if (req.method === 'PUT') return this.put(req, res, id, token);
    if (req.method === 'GET' || req.method === 'HEAD') return this.get(req, res, id, token);
    this.fail(res, 405, 'method not allowed', { allow: 'GET, HEAD, PUT, OPTIONS' });
  }

  // --- PUT -------------------------------------------------------------------------------------

  private async put(req: http.IncomingMessage, res: http.ServerResponse, id: string, token: string): Promise<void> {
    const file = await this.core.stores.uploads.get(id);
    if (!file || !sameToken(file.putToken, token)) { this.fail(res, 404, 'not found'); return; }
    if (file.state === 'stored') { this.fail(res, 409, 'this slot has been used', {}, 'put-conflict'); return; }
    if (file.expiresAt.getTime() < Date.now()) { this.fail(res, 410, 'this slot has lapsed; request a new one', {}, 'put-lapsed'); return; }
    const lengthHeader = req.headers['content-length'];
    if (lengthHeader === undefined) { this.fail(res, 411, `Content-Length is required (${file.size})`, {}, 'put-length'); return; }
    const length = /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : NaN;
    if (length > file.size) { this.fail(res, 413, `the slot is for ${file.size} bytes`, {}, 'put-length'); return; }
    if (length !== file.size) { this.fail(res, 400, `Content-Length must be the slot's size, ${file.size}`, {}, 'put-length'); return; }
    const type = req.headers['content-type'];
    if (type !== undefined && essence(type) !== essence(file.contentType)) {
      this.fail(res, 400, `Content-Type must be the slot's, ${file.contentType}`, {}, 'put-type');
      return;
    }
    if (this.writing.has(id)) { this.fail(res, 409, 'this slot is being written', {}, 'put-conflict'); return; }
    this.writing.add(id);
    try {
      await this.storeBody(req, res, file);
    } finally {
      this.writing.delete(id);
    }
  }

  private async storeBody(req: http.IncomingMessage, res: http.ServerResponse, file: UploadFile): Promise<void> {
    const { blobs, metrics } = this.rt;
    try {
      await blobs.put(file.id, req, file.size);
    } catch (e) {
      // The temporary file is gone; nothing of this body can ever be served.
      if (req.destroyed || req.readableAborted) { metrics.refused('put-incomplete'); return; }
      if (e instanceof BlobSizeError) { this.fail(res, e.tooLong ? 413 : 400, `expected ${file.size} bytes`, {}, 'put-incomplete'); return; }
      throw e;
    }
    const events: ComplianceEvent[] = complianceState(this.core).enabled
      ? [{
        kind: 'upload', stamp: new Date(), room: file.room, actor: file.owner, nick: null, content: storedName(file), messageId: null,
        detail: { size: file.size, type: file.contentType, name: file.name },
      }]
      : [];
    let stored: boolean;
    try {
      stored = await this.core.stores.uploads.markStored(file.id, events);
    } catch (err) {
      // The compliance record is part of the upload: without it the file is not kept.
      this.core.log.error('upload: cannot record the upload', { err, id: file.id });
      await blobs.delete(file.id).catch(() => {});
      this.fail(res, 500, 'the upload could not be recorded', {}, 'compliance');
      return;
    }
    if (!stored) {
      const now = await this.core.stores.uploads.get(file.id);
      if (now?.state === 'stored') { this.fail(res, 409, 'this slot has been used', {}, 'put-conflict'); return; }
      await blobs.delete(file.id).catch(() => {});
      this.fail(res, 410, 'this slot has lapsed; request a new one', {}, 'put-lapsed');
      return;
    }
    metrics.uploads.inc();
    metrics.bytes.inc(file.size);
    res.writeHead(201, { ...CORS, 'content-type': 'text/plain; charset=utf-8' });
    res.end('stored\n');
  }

  // --- GET and HEAD ----------------------------------------------------------------------------

  /** The account a Basic Authorization header proves (bare JID), null without one, false when it is wrong. */
  private async authenticated(req: http.IncomingMessage): Promise<string | null | false> {
    const h = req.headers.authorization;
    if (!h) return null;
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(h);
    if (!m) return false;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 1) return false;
    let user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const at = user.lastIndexOf('@');
    if (at !== -1) {
      if (user.slice(at + 1).toLowerCase() !== this.core.domain) return false;
      user = user.slice(0, at);
    }
    const local = normalizeUsername(user, this.core.domain);
    if (!local) return false;
    const rec = await this.core.stores.users.get(local);
    if (!rec || rec.disabled) return false;
    const { sha1, sha256 } = rec.credentials;
    const ok = sha256
      ? await verifyPasswordAgainstScram(password, { hash: 'SHA-256', ...sha256 })
      : await verifyPasswordAgainstScram(password, { hash: 'SHA-1', ...sha1 });
    return ok ? `${local}@${this.core.domain}` : false;
  }

  private async get(req: http.IncomingMessage, res: http.ServerResponse, id: string, token: string): Promise<void> {
    const file = await this.core.stores.uploads.get(id);
    // Nothing that is not completely stored is served, and a wrong token looks like no file at all.
    if (!file || file.state !== 'stored' || !sameToken(file.token, token)) { this.fail(res, 404, 'not found'); return; }
    const actor = await this.authenticated(req);
    if (actor === false) {
      this.fail(res, 401, 'wrong credentials', { 'www-authenticate': `Basic realm="${this.core.domain}", charset="UTF-8"` }, 'download-auth');
      return;
    }
    if (actor && file.room && !(await mayReadRoom(this.core, file.room, actor))) {
      this.fail(res, 403, 'you may not read this room', {}, 'download-forbidden');
      return;
    }
    const etag = `"${file.id}"`;
    const type = essence(file.contentType);
    const headers: Record<string, string> = {
      ...CORS,
      'content-type': file.contentType,
      'x-content-type-options': 'nosniff',
      // Whatever the file holds, it runs nothing and loads nothing when opened from this origin.
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; media-src 'self'; frame-ancestors 'none'; sandbox",
      'referrer-policy': 'no-referrer',
      'content-disposition': contentDisposition(INLINE.test(type) ? 'inline' : 'attachment', file.name),
      'accept-ranges': 'bytes',
      etag,
      'last-modified': (file.storedAt ?? file.createdAt).toUTCString(),
      // The bytes behind a URL never change; private: the link is a capability, not for shared caches.
      'cache-control': 'private, max-age=31536000, immutable',
    };
    if (req.headers['if-none-match'] === etag) { res.writeHead(304, headers).end(); return; }
    const ifRange = req.headers['if-range'];
    const range = ifRange === undefined || ifRange === etag ? parseRange(req.headers.range, file.size) : null;
    if (range === 'unsatisfiable') {
      this.fail(res, 416, 'range not satisfiable', { 'content-range': `bytes */${file.size}` });
      return;
    }
    const status = range ? 206 : 200;
    headers['content-length'] = String(range ? range.end - range.start + 1 : file.size);
    if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${file.size}`;
    if (req.method === 'HEAD') { res.writeHead(status, headers).end(); return; }
    const body = await this.rt.blobs.get(file.id, range ?? undefined);
    if (!body) {
      this.core.log.error('upload: a stored file has no bytes', { id: file.id });
      this.fail(res, 404, 'not found');
      return;
    }
    if (complianceState(this.core).enabled) {
      const address = req.socket.remoteAddress ?? '';
      const event: ComplianceEvent = {
        kind: 'download', stamp: new Date(), room: file.room, actor: actor ?? '', nick: null, content: storedName(file), messageId: null,
        detail: { size: file.size, type: file.contentType, name: file.name, address, ...(range ? { range: `${range.start}-${range.end}` } : {}) },
      };
      try {
        // The record is committed before a byte goes out; without it nothing is sent.
        await this.core.stores.compliance.append([event]);
      } catch (err) {
        (body as unknown as { destroy(): void }).destroy();
        this.core.log.error('upload: cannot record the download', { err, id: file.id });
        this.fail(res, 500, 'the download could not be recorded', {}, 'compliance');
        return;
      }
    }
    this.rt.metrics.downloads.inc();
    res.writeHead(status, headers);
    await pipeline(body, res).catch(() => {}); // a client that goes away mid-download is not an error here
  }
}
