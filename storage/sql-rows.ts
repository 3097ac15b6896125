// Row codecs every SQL store shares: the same column means the same value on PostgreSQL and PGlite.
import type { StoredCredentials, UserRecord } from './types.js';

// pg returns bytea as Buffer, PGlite as Uint8Array.
export function toBuffer(v: unknown): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError('expected bytea');
}

// int8/bigint arrive as string (pg) or number/bigint (PGlite); every value here fits a double.
export const num = (v: unknown): number => Number(v);

// Byte-order sorting so both backends agree regardless of the database's default collation.
export const C = 'COLLATE "C"';

export interface UserRow {
  username: string;
  disabled: boolean;
  created_at: Date;
  sha1_salt: unknown;
  sha1_iterations: number;
  sha1_stored_key: unknown;
  sha1_server_key: unknown;
  sha256_salt: unknown;
  sha256_iterations: number;
  sha256_stored_key: unknown;
  sha256_server_key: unknown;
}

export function credentialParams(c: StoredCredentials): unknown[] {
  return [
    c.sha1.salt, c.sha1.iterations, c.sha1.storedKey, c.sha1.serverKey,
    // No SHA-256 keys: stored as 0 iterations (the columns predate accounts without them).
    c.sha256?.salt ?? Buffer.alloc(0), c.sha256?.iterations ?? 0, c.sha256?.storedKey ?? Buffer.alloc(0), c.sha256?.serverKey ?? Buffer.alloc(0),
  ];
}

export function toUserRecord(r: UserRow): UserRecord {
  return {
    username: r.username,
    disabled: r.disabled,
    createdAt: new Date(r.created_at),
    credentials: {
      sha1: {
        salt: toBuffer(r.sha1_salt),
        iterations: r.sha1_iterations,
        storedKey: toBuffer(r.sha1_stored_key),
        serverKey: toBuffer(r.sha1_server_key),
      },
      sha256: r.sha256_iterations === 0 ? null : {
        salt: toBuffer(r.sha256_salt),
        iterations: r.sha256_iterations,
        storedKey: toBuffer(r.sha256_stored_key),
        serverKey: toBuffer(r.sha256_server_key),
      },
    },
  };
}
