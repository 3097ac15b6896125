// Who is online across the cluster, for the admin operations that list or count sessions. Ending
// sessions and announcing deleted accounts live with the account operations (src/accounts.ts).
import { tryParseJid } from '../../protocol/jid.js';
import type { Server } from '../context.js';

/** The bare JIDs of this domain's accounts with a session anywhere in the cluster. */
export function onlineAccounts(server: Server): string[] {
  const bare = new Set<string>();
  for (const rec of server.sessions.list()) {
    const j = tryParseJid(rec.jid);
    if (j && j.domain === server.domain) bare.add(j.bareString());
  }
  return [...bare].sort();
}
