// The directory (groups, org units) and the persistent-chat model (categories, room settings,
// add-ins, service settings, policies, invitations) in SQL that runs unchanged on PostgreSQL and PGlite.
import type { ChatStore, Db, DirectoryStore } from './types.js';

const todo = (): never => { throw new Error('not implemented yet'); };

export function createDirectoryStore(_db: Db): DirectoryStore {
  return new Proxy({} as DirectoryStore, { get: () => todo });
}

export function createChatStore(_db: Db): ChatStore {
  return new Proxy({} as ChatStore, { get: () => todo });
}
