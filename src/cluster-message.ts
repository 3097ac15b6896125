// What travels between nodes on the session store's channels: a stanza for a session ('d'), a
// request to close a replaced session ('k') and the answer that it has ended ('e'), a module message
// ('m'), a reply to a server request ('r'), or several of those for one node in one publish ('b', see
// src/cluster-batch.ts).
import { escapeAttr } from '../protocol/xml.js';

export interface ClusterEnvelope {
  t: 'd' | 'k' | 'e' | 'm' | 'r' | 'b'; to?: string; x?: string; topic?: string; data?: unknown;
  /** 'k': the request's id and the asking node, to answer with an 'e' of that id. */
  id?: string;
  from?: string;
  /** 'b': the envelopes, in order; a 'd' among them may name its stanza by index (i) in xs. */
  e?: ClusterEnvelope[];
  /** 'b': stanzas sent to several sessions, each written once without its 'to' (a room's fan-out). */
  xs?: string[];
  /** In a 'b': the index in xs of this 'd' envelope's stanza, to be addressed to `to`. */
  i?: number;
}

/** A module message as the nodes read it off the bus (ClusterBus.on(topic)). */
export function encodeClusterMessage(topic: string, data: unknown): string {
  return JSON.stringify({ t: 'm', topic, data } satisfies ClusterEnvelope);
}

/** The module topic on which nodes say which envelope forms they read (rolling upgrades). */
export const FORMS_TOPIC = 'cluster/forms';
export interface FormsNotice { node: string; forms: string[]; ask: boolean }

/**
 * One publish for several envelopes to one node. A stanza that several of them carry, each with only
 * its 'to' different (a room message to several occupants on that node), is written once.
 */
export function encodeBatch(envs: ClusterEnvelope[]): string {
  const xs: string[] = [];
  const index = new Map<string, number>();
  const e = envs.map((env) => {
    if (env.t !== 'd' || env.to === undefined || env.x === undefined) return env;
    const bare = withoutTo(env.x, env.to);
    if (bare === null) return env;
    let i = index.get(bare);
    if (i === undefined) {
      index.set(bare, (i = xs.length));
      xs.push(bare);
    }
    return { t: 'd', to: env.to, i } satisfies ClusterEnvelope;
  });
  return JSON.stringify(xs.length > 0 ? { t: 'b', e, xs } : { t: 'b', e });
}

/** The envelopes of a batch, each as if it had come alone. */
export function decodeBatch(batch: ClusterEnvelope): ClusterEnvelope[] {
  const xs = batch.xs ?? [];
  return (batch.e ?? []).map((env) => {
    if (env.t !== 'd' || env.i === undefined || env.to === undefined) return env;
    const bare = xs[env.i];
    return bare === undefined ? env : { t: 'd', to: env.to, x: withTo(bare, env.to) };
  });
}

const NAME = /^<([a-z]+)/;

/** The stanza without the 'to' written first in its start tag (as a room addresses its fan-out), or null. */
function withoutTo(xml: string, to: string): string | null {
  const name = NAME.exec(xml)?.[1];
  if (!name) return null;
  const head = '<' + name + " to='" + escapeAttr(to) + "'";
  return xml.startsWith(head) ? '<' + name + xml.slice(head.length) : null;
}

function withTo(xml: string, to: string): string {
  const name = NAME.exec(xml)?.[1] ?? '';
  return '<' + name + " to='" + escapeAttr(to) + "'" + xml.slice(name.length + 1);
}
