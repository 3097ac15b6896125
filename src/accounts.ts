// Account operations shared by the CLI, ad-hoc commands and in-band registration.
import { deriveScramCredentialsAsync } from '../protocol/sasl.js';
import { tryParseJid } from '../protocol/jid.js';
import type { DataStores, StoredCredentials } from '../storage/types.js';

export async function credentialsFor(password: string, iterations: number): Promise<StoredCredentials> {
  const [sha1, sha256] = await Promise.all([
    deriveScramCredentialsAsync(password, 'SHA-1', iterations),
    deriveScramCredentialsAsync(password, 'SHA-256', iterations),
  ]);
  const strip = (c: typeof sha1) => ({ salt: c.salt, iterations: c.iterations, storedKey: c.storedKey, serverKey: c.serverKey });
  return { sha1: strip(sha1), sha256: strip(sha256) };
}

/** The prepared local part of a username, or null when it is not a valid one for this domain. */
export function normalizeUsername(username: string, domain: string): string | null {
  const j = tryParseJid(`${username}@${domain}`);
  return j && j.local && !j.resource ? j.local : null;
}

export async function addUser(stores: DataStores, domain: string, username: string, password: string, iterations: number): Promise<'ok' | 'exists' | 'invalid'> {
  const user = normalizeUsername(username, domain);
  if (!user || password.length === 0) return 'invalid';
  return (await stores.users.create(user, await credentialsFor(password, iterations))) ? 'ok' : 'exists';
}

export async function setPassword(stores: DataStores, domain: string, username: string, password: string, iterations: number): Promise<boolean> {
  const user = normalizeUsername(username, domain);
  if (!user || password.length === 0) return false;
  return stores.users.setCredentials(user, await credentialsFor(password, iterations));
}
