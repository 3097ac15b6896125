// What admin operations change in a running server beyond the database: sessions to end and
// caches to forget, on every node of the cluster. Topics are handled by the admin module.
import { tryParseJid, type Jid } from '../../protocol/jid.js';
import type { Server } from '../context.js';

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

/** The bare JIDs of this domain's accounts with a session anywhere in the cluster. */
export function onlineAccounts(server: Server): string[] {
  const bare = new Set<string>();
  for (const rec of server.sessions.list()) {
    const j = tryParseJid(rec.jid);
    if (j && j.domain === server.domain) bare.add(j.bareString());
  }
  return [...bare].sort();
}
