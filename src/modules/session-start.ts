// The read an account's first available presence makes (storage SessionStart: roster, waiting
// subscription requests, offline count in one statement). presence.ts reads it and keeps it on the
// session while 'session/online' runs; offline.ts takes stored messages only when it counts some.
import type { SessionStart } from '../../storage/types.js';
import type { LocalSession } from '../context.js';

const KEY = 'session-start';

export function keepSessionStart(session: LocalSession, start: SessionStart | null): void {
  if (start) session.data.set(KEY, start);
  else session.data.delete(KEY);
}

export function sessionStartOf(session: LocalSession): SessionStart | null {
  return (session.data.get(KEY) as SessionStart | undefined) ?? null;
}
