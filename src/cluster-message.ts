// What travels between nodes on the session store's channels: a stanza for a session ('d'), a
// request to close a replaced session ('k'), a module message ('m') or a reply to a server request ('r').
export interface ClusterEnvelope { t: 'd' | 'k' | 'm' | 'r'; to?: string; x?: string; topic?: string; data?: unknown }

/** A module message as the nodes read it off the bus (ClusterBus.on(topic)). */
export function encodeClusterMessage(topic: string, data: unknown): string {
  return JSON.stringify({ t: 'm', topic, data } satisfies ClusterEnvelope);
}
