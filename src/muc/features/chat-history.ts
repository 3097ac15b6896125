// History in rooms under the persistent-chat model: a category with chat history off keeps nothing
// (messages are delivered, not archived, and a join gets no history; archive queries get an empty
// result, see governance); otherwise a joiner gets the service's default history (default 30)
// unless it asks for fewer or more (at most what the room caches).
import type { RoomFeature } from '../events.js';
import { governedRoom } from '../governed.js';

/** The most join-history messages a room keeps at hand (history.ts caches this many). */
const MOST = 500;

export const chatHistory: RoomFeature = {
  name: 'chat-history',
  init(hooks, ctx) {
    hooks.on('message/persist', (ev) => {
      const g = governedRoom(ctx.server, ctx.domain, ev.room.name);
      if (g && !g.category.chatHistory) ev.entry = null;
      return undefined;
    }, 100);
    hooks.on('history/count', ({ room, requested }) => {
      const g = governedRoom(ctx.server, ctx.domain, room.name);
      if (!g) return undefined;
      if (!g.category.chatHistory) return 0;
      return Math.min(requested ?? g.service.settings.defaultHistory, MOST);
    });
  },
};
