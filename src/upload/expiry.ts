// Expiry: deletes slots never used (their PUT URL lapsed) and files no archived message mentions
// after upload.expireUnreferencedDays. It costs nothing on the message path: the job looks for each
// old candidate's id in the archive it was meant for (the room's, or the uploader's personal one for
// a one-to-one file), keeps the ones found for good (referenced) and deletes the rest, row and bytes.
import type { BlobStore, DataStores } from '../../storage/types.js';
import type { UploadConfig } from '../config.js';

export interface ExpiryResult {
  /** Slots whose PUT URL lapsed unused (or whose upload never finished). */
  lapsed: number;
  /** Ids of the stored files deleted as unreferenced. */
  deleted: string[];
  /** Candidates found in an archived message: kept from now on. */
  referenced: number;
}

const PAGE = 200;
// One run looks at this many candidates at most; the next run continues.
const MAX_PAGES = 50;

export async function runUploadExpiry(stores: Pick<DataStores, 'uploads'>, blobs: BlobStore, cfg: Pick<UploadConfig, 'expireUnreferencedDays'>, now = new Date()): Promise<ExpiryResult> {
  const out: ExpiryResult = { lapsed: 0, deleted: [], referenced: 0 };
  for (let page = 0; page < MAX_PAGES; page++) {
    const lapsed = await stores.uploads.lapsed(now, PAGE);
    for (const f of lapsed) {
      if (await stores.uploads.delete(f.id)) out.lapsed++;
      // A PUT may have renamed its bytes into place before failing to record them.
      await blobs.delete(f.id);
    }
    if (lapsed.length < PAGE) break;
  }
  if (cfg.expireUnreferencedDays === null) return out;
  const cutoff = new Date(now.getTime() - cfg.expireUnreferencedDays * 86400_000);
  for (let page = 0; page < MAX_PAGES; page++) {
    const candidates = await stores.uploads.unreferenced(cutoff, PAGE);
    const found: string[] = [];
    for (const f of candidates) {
      if (await stores.uploads.mentionedIn(f.room ?? f.owner, f.id)) {
        found.push(f.id);
        continue;
      }
      // Row first: once it is gone nothing serves the file, so deleting the bytes next is safe.
      if (await stores.uploads.delete(f.id)) out.deleted.push(f.id);
      await blobs.delete(f.id);
    }
    await stores.uploads.markReferenced(found);
    out.referenced += found.length;
    if (candidates.length < PAGE) break;
  }
  return out;
}

/** Deletes one file (admin): its row, then its bytes. */
export async function deleteUpload(stores: Pick<DataStores, 'uploads'>, blobs: BlobStore, id: string): Promise<boolean> {
  const row = await stores.uploads.delete(id);
  if (!row) return false;
  await blobs.delete(id);
  return true;
}
