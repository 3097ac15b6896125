// The persistent-chat model in a running server: loaded before the MUC services start, kept current
// from the changes every node publishes (the session store's pub/sub), and reachable from the room
// features, the admin operations and the user IQs through chatModel(server).
import type { Module, Server } from '../context.js';
import { ChatModel, CHAT_TOPIC, type ChatChange } from './model.js';

const models = new WeakMap<Server, ChatModel>();

/** The server's model (created when the module starts). */
export function chatModel(server: Server): ChatModel {
  const m = models.get(server);
  if (!m) throw new Error('the persistent-chat model is not started');
  return m;
}

/** The server's model, or undefined before the module starts (or without it). */
export function chatModelOf(server: Server): ChatModel | undefined {
  return models.get(server);
}

export const chatModelModule: Module = {
  name: 'chat-model',
  async init(server) {
    const domains = (server.config.muc.services ?? []).map((s) => s.domain);
    const model = new ChatModel({
      stores: server.stores,
      isAdmin: (bare) => server.isAdmin(bare),
      nodeId: server.sessions.nodeId,
      broadcast: (change) => server.cluster.broadcast(CHAT_TOPIC, change),
      log: server.log,
    }, domains);
    server.cluster.on(CHAT_TOPIC, (data) => model.received(data as ChatChange));
    await model.start();
    models.set(server, model);
    // The original read a user's memberships at sign-in: reading the principal set as a session starts
    // (logins in one turn share a statement) keeps it off the user's first join, in the room's order.
    server.hooks.on('session/bound', (session) => {
      if (model.governed && !model.subject(session.bare)) model.ensureSubjects([session.bare]).catch(() => {});
      return false;
    });
  },
};
