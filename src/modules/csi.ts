// Client State Indication (XEP-0352): while a client says it is inactive, presence updates wait (only
// the latest per sender) and go out, in order, before the next stanza that is sent or when it is active again.
import { NS } from '../../protocol/namespaces.js';
import type { LocalSession, Module } from '../context.js';

const MODULE = 'csi';
/** Senders held at most; beyond it the buffer is flushed rather than grown. */
const MAX_HELD = 1000;

/** Presence held for an inactive client, serialised: the latest per sender, in the order of those latest updates. */
export class PresenceBuffer {
  private readonly held = new Map<string, string>();

  /** Keeps xml as its sender's latest; false when the buffer is full and must be flushed first. */
  hold(from: string, xml: string): boolean {
    if (!this.held.has(from) && this.held.size >= MAX_HELD) return false;
    // Re-inserting moves the sender to the end: the order stays that of the latest updates.
    this.held.delete(from);
    this.held.set(from, xml);
    return true;
  }

  /** Everything held, oldest first; the buffer is empty afterwards. */
  drain(): string[] {
    const out = [...this.held.values()];
    this.held.clear();
    return out;
  }

  get size(): number {
    return this.held.size;
  }
}

/** Broadcast availability only: subscription requests, probes and errors are never held back. */
export function isHoldablePresence(name: string, type: string | undefined): boolean {
  return name === 'presence' && (type === undefined || type === 'unavailable');
}

interface CsiState { inactive: boolean; buffer: PresenceBuffer }

function stateOf(session: LocalSession): CsiState {
  let s = session.data.get(MODULE) as CsiState | undefined;
  if (!s) session.data.set(MODULE, (s = { inactive: false, buffer: new PresenceBuffer() }));
  return s;
}

function flush(session: LocalSession, state: CsiState): void {
  for (const xml of state.buffer.drain()) session.sendRaw(xml, 'presence');
}

export const csiModule: Module = {
  name: MODULE,
  init(server) {
    server.hooks.on('stream/features', ({ session }) => {
      if (session.authenticated) session.features.c('csi', { xmlns: NS.csi });
      return false;
    });

    server.hooks.on('client/stanza', ({ stanza, session }) => {
      if (stanza.ns !== NS.csi) return false;
      const state = stateOf(session);
      if (stanza.name === 'inactive') state.inactive = true;
      else if (stanza.name === 'active') {
        state.inactive = false;
        flush(session, state);
      }
      return true; // nonzas are not routed
    });

    // Lowest priority: only what every other filter lets through reaches the client or the buffer.
    // Decided from the head alone: nothing is parsed, and what is held is the stanza as it will be written.
    server.hooks.on('deliver/filter', (d) => {
      const session = d.session;
      const state = session.data.get(MODULE) as CsiState | undefined;
      if (!state) return false;
      if (state.inactive && isHoldablePresence(d.name, d.type)) {
        const from = d.from ?? '';
        if (state.buffer.hold(from, d.xml)) return true;
        flush(session, state);
        state.buffer.hold(from, d.xml);
        return true;
      }
      // Anything else goes out now, after the presence held before it, so order is kept.
      if (state.buffer.size) flush(session, state);
      return false;
    }, -100);
  },
};
