// Flood limit: a token bucket per occupant (muc.messagesPerSecond, muc.messageBurst); a groupchat
// message without a token is refused with resource-constraint (wait).
import { StanzaError } from '../../../protocol/errors.js';
import type { RoomFeature } from '../events.js';
import type { Occupant } from '../occupants.js';

interface Bucket { tokens: number; refilled: number }

export const floodLimit: RoomFeature = {
  name: 'flood-limit',
  init(hooks, ctx) {
    const { messagesPerSecond, messageBurst } = ctx.limits;
    const buckets = new WeakMap<Occupant, Bucket>();
    hooks.on('message/pre-groupchat', ({ occupant }) => {
      const now = Date.now();
      let b = buckets.get(occupant);
      if (!b) buckets.set(occupant, b = { tokens: messageBurst, refilled: now });
      b.tokens = Math.min(messageBurst, b.tokens + ((now - b.refilled) / 1000) * messagesPerSecond);
      b.refilled = now;
      if (b.tokens < 1) throw new StanzaError('resource-constraint', 'you are sending too fast', 'wait');
      b.tokens -= 1;
      return undefined;
    }, 0);
  },
};
