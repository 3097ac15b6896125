// The reads of a session's start. At bind: the modules' own parts, in one statement (see
// SESSION_START_READ). At the first available presence: storage SessionStart (roster, waiting
// subscription requests, offline count in one statement); presence.ts reads it and keeps it on the
// session while 'session/online' runs; offline.ts takes stored messages only when it counts some.
import type { SessionStart } from '../../storage/types.js';
import type { LocalSession } from '../context.js';

const KEY = 'session-start';

/**
 * Priority of the 'session/bound' handlers that start a module's read of its own data without waiting
 * for it (archive preferences, vCard): above the block list's, which is awaited (delivery filters need
 * it in place), so every part is asked for in the same turn and they share one statement.
 */
export const SESSION_START_READ = 10;

export function keepSessionStart(session: LocalSession, start: SessionStart | null): void {
  if (start) session.data.set(KEY, start);
  else session.data.delete(KEY);
}

export function sessionStartOf(session: LocalSession): SessionStart | null {
  return (session.data.get(KEY) as SessionStart | undefined) ?? null;
}
