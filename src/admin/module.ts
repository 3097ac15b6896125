// The admin operations in a running server: the ad-hoc face on the server JID, the local socket
// face, and what other nodes must do when an operation changes something they hold.
import type { Module, Server } from '../context.js';
import { adminCommands, chatCommands } from './catalog.js';
import { registerAdhocFace } from './faces/adhoc.js';
import { serveAdminSocket, type AdminSocket } from './faces/socket.js';
import { END_SESSION_TOPIC, USER_DELETED_TOPIC } from '../accounts.js';

const sockets = new WeakMap<Server, AdminSocket>();

export const adminModule: Module = {
  name: 'admin',
  async init(server) {
    registerAdhocFace(server, adminCommands);
    // The persistent-chat operations on each MUC service's JID too, where room managers run the room ones.
    for (const s of server.config.muc.services ?? []) registerAdhocFace(server, chatCommands, s.domain);
    server.cluster.on(END_SESSION_TOPIC, (data) => {
      const d = data as { jid?: unknown; condition?: unknown; text?: unknown } | null;
      if (!d || typeof d.jid !== 'string') return;
      const condition = d.condition === 'not-authorized' ? 'not-authorized' : undefined;
      server.local.get(d.jid)?.close(condition, typeof d.text === 'string' ? d.text : undefined);
    });
    server.cluster.on(USER_DELETED_TOPIC, (data) => {
      const d = data as { username?: unknown } | null;
      if (d && typeof d.username === 'string') void server.hooks.fire('user/deleted', { username: d.username });
    });
    sockets.set(server, await serveAdminSocket(server));
  },
  async stop(server) {
    const socket = sockets.get(server);
    sockets.delete(server);
    await socket?.close();
  },
};
