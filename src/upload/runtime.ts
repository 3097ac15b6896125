// What the upload service's parts share on a running server: the blob store, the public URL base,
// the service's JID and its metrics. The module sets it up; slots, HTTP and admin read it.
import path from 'node:path';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import client from 'prom-client';
import type { BlobStore, UploadFile } from '../../storage/types.js';
import { createFsBlobStore } from '../../storage/blobs-fs.js';
import type { Config } from '../config.js';
import type { Server } from '../context.js';

/** Why a slot or a transfer was refused, as the refusals metric labels it. */
export type Refusal =
  | 'bad-request' | 'no-room' | 'not-member' | 'switch-off' | 'too-large' | 'quota-user' | 'quota-service'
  | 'put-length' | 'put-type' | 'put-conflict' | 'put-lapsed' | 'put-incomplete' | 'compliance' | 'download-forbidden' | 'download-auth';

export class UploadMetrics {
  readonly slots: client.Counter;
  readonly uploads: client.Counter;
  readonly bytes: client.Counter;
  readonly downloads: client.Counter;
  readonly refusals: client.Counter<'reason'>;
  readonly expired: client.Counter;
  constructor(registry: client.Registry) {
    const registers = [registry];
    this.slots = new client.Counter({ name: 'perch_upload_slots_total', help: 'Upload slots granted', registers });
    this.uploads = new client.Counter({ name: 'perch_uploads_total', help: 'Files stored (complete PUTs)', registers });
    this.bytes = new client.Counter({ name: 'perch_upload_bytes_total', help: 'Bytes of the files stored', registers });
    this.downloads = new client.Counter({ name: 'perch_upload_downloads_total', help: 'File downloads served (GET, whole or range)', registers });
    this.refusals = new client.Counter({ name: 'perch_upload_refusals_total', help: 'Slot requests and transfers refused, by reason', labelNames: ['reason'], registers });
    this.expired = new client.Counter({ name: 'perch_upload_expired_total', help: 'Files and lapsed slots deleted by expiry', registers });
  }
  refused(reason: Refusal): void { this.refusals.labels(reason).inc(); }
}

export interface UploadRuntime {
  /** The service's JID (upload.<domain> by default). */
  domain: string;
  /** Scheme, host, port and optional path that file URLs start with. */
  base: string;
  blobs: BlobStore;
  metrics: UploadMetrics;
}

const runtimes = new WeakMap<Server, UploadRuntime>();
export function setUploadRuntime(server: Server, rt: UploadRuntime): void { runtimes.set(server, rt); }
export function uploadRuntime(server: Server): UploadRuntime | undefined { return runtimes.get(server); }

/** The store files go to: <dataDir>/uploads (the same for the server and the CLI on its data directory). */
export function blobStoreFor(config: Config): BlobStore {
  return createFsBlobStore(path.resolve(config.dataDir, 'uploads'));
}

export const newId = (): string => randomBytes(12).toString('base64url');
export const newToken = (): string => randomBytes(24).toString('base64url');

/** Constant-time comparison of two tokens. */
export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The name a file is stored and recorded under: its id and the original extension (id.ext). */
export function storedName(file: Pick<UploadFile, 'id' | 'name'>): string {
  const ext = /\.([A-Za-z0-9]{1,16})$/.exec(file.name)?.[1];
  return ext ? `${file.id}.${ext.toLowerCase()}` : file.id;
}

export function getUrl(base: string, f: Pick<UploadFile, 'id' | 'token' | 'name'>): string {
  return `${base}/upload/${f.id}/${f.token}/${encodeURIComponent(f.name)}`;
}
export function putUrl(base: string, f: Pick<UploadFile, 'id' | 'putToken' | 'name'>): string {
  return `${base}/upload/${f.id}/${f.putToken}/${encodeURIComponent(f.name)}`;
}
