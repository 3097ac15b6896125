// Uploaded files' bytes in a directory: <root>/<first two characters of the key>/<key>. A body is
// written to <root>/tmp/<key>.<random>.part and renamed into place only once every byte arrived and
// is on disk, so a half-written file never has its final name.
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobStore } from './types.js';

/** The body was not exactly the announced size. */
export class BlobSizeError extends Error {
  constructor(readonly expected: number, readonly got: number, readonly tooLong: boolean) {
    super(tooLong ? `more than ${expected} bytes` : `${got} of ${expected} bytes`);
  }
}

/** Keys are ours (random, URL-safe); anything else is refused rather than mapped to a path. */
const KEY = /^[A-Za-z0-9_-]{8,128}$/;

/** Passes bytes through and fails as soon as more than `limit` arrive. */
class Counter extends Transform {
  count = 0;
  constructor(private readonly limit: number) { super(); }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.count += chunk.length;
    if (this.count > this.limit) done(new BlobSizeError(this.limit, this.count, true));
    else done(null, chunk);
  }
}

export function createFsBlobStore(root: string): BlobStore {
  const file = (key: string): string => {
    if (!KEY.test(key)) throw new Error(`invalid blob key: ${key}`);
    return path.join(root, key.slice(0, 2), key);
  };
  return {
    async put(key, body, size) {
      const final = file(key);
      const tmpDir = path.join(root, 'tmp');
      await mkdir(tmpDir, { recursive: true });
      await mkdir(path.dirname(final), { recursive: true });
      const tmp = path.join(tmpDir, `${key}.${randomBytes(6).toString('hex')}.part`);
      const counter = new Counter(size);
      try {
        // Opened before the body flows, so that a failure cleans up a file that already exists.
        const out = await open(tmp, 'wx', 0o600);
        await pipeline(body, counter, out.createWriteStream()); // the stream closes the handle, also on failure
        if (counter.count !== size) throw new BlobSizeError(size, counter.count, false);
        const fh = await open(tmp, 'r');
        try { await fh.sync(); } finally { await fh.close(); }
        await rename(tmp, final);
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
    },

    async get(key, range) {
      const f = file(key);
      try {
        await stat(f);
      } catch {
        return null;
      }
      return createReadStream(f, range ? { start: range.start, end: range.end } : {});
    },

    async stat(key) {
      try {
        const s = await stat(file(key));
        return { size: s.size };
      } catch {
        return null;
      }
    },

    async delete(key) {
      try {
        await unlink(file(key));
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw e;
      }
    },
  };
}
