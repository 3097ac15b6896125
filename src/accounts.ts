// Account operations shared by the CLI, ad-hoc commands and in-band registration.
import { deriveScramCredentialsAsync } from '../protocol/sasl.js';
import { parseJid, tryParseJid, type Jid } from '../protocol/jid.js';
import type { DataStores, StoredCredentials } from '../storage/types.js';
import type { Server } from './context.js';

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

/** Cluster topic: end one session held by the receiving node. */
export const END_SESSION_TOPIC = 'end-session';
/** Cluster topic: an account was deleted; the receiving node fires user/deleted for its own caches. */
export const USER_DELETED_TOPIC = 'admin/user-deleted';

/**
 * Ends the sessions of an account (bare JID) or one session (full JID), wherever in the cluster
 * they are. Returns how many were asked to end.
 */
export function endSessions(server: Server, jid: Jid, condition?: 'not-authorized', text?: string): number {
  const bare = jid.bareString();
  let n = 0;
  for (const s of server.localOf(bare)) {
    if (jid.isBare() || s.full === jid.toString()) { s.close(condition, text); n++; }
  }
  for (const rec of server.sessions.resources(bare)) {
    if (rec.node === server.sessions.nodeId || (!jid.isBare() && rec.jid !== jid.toString())) continue;
    server.cluster.send(rec.node, END_SESSION_TOPIC, { jid: rec.jid, condition, text });
    n++;
  }
  return n;
}

/** The other nodes this node knows of (those holding sessions). */
function otherNodes(server: Server): Set<string> {
  const nodes = new Set<string>();
  for (const rec of server.sessions.list()) if (rec.node !== server.sessions.nodeId) nodes.add(rec.node);
  return nodes;
}

/** Tells this node's features (user/deleted) and every other node that an account is gone. */
export async function announceUserDeleted(server: Server, username: string): Promise<void> {
  for (const node of otherNodes(server)) server.cluster.send(node, USER_DELETED_TOPIC, { username });
  await server.hooks.fire('user/deleted', { username });
}

/**
 * Deletes an account and everything kept for it: its sessions end on every node; roster, pending
 * subscription requests, offline messages, vCard, private XML and block list go with the account's
 * row (ON DELETE CASCADE); the personal archive, which has no foreign key, is removed here; and
 * features forget their caches (user/deleted) on every node. The one account deletion, whoever
 * asks: the CLI, an ad-hoc command or the account itself (in-band).
 */
export async function deleteAccount(
  stores: DataStores, domain: string, username: string, server: Server | null,
  opts: { endSessions: 'before' | 'after' } = { endSessions: 'before' },
): Promise<boolean> {
  const bare = `${username}@${domain}`;
  const end = () => { if (server) endSessions(server, parseJid(bare), 'not-authorized', 'Account deleted'); };
  if (opts.endSessions === 'before') end();
  if (!(await stores.users.delete(username))) return false;
  await stores.archive.removeArchive(bare);
  if (server) await announceUserDeleted(server, username);
  // In-band removal (XEP-0077 §3.2): the result reaches the client before its sessions end.
  if (opts.endSessions === 'after') setImmediate(end);
  return true;
}
