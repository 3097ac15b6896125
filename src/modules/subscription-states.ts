// Presence subscription states and their transitions: the tables of RFC 6121 Appendix A (A.2 for
// stanzas the user sends, A.3 for stanzas the user's server receives), plus pre-approval (§3.4).
// Pure functions over plain data, so every row can be tested on its own.
import type { Subscription } from '../../storage/types.js';

export type SubscriptionStanza = 'subscribe' | 'subscribed' | 'unsubscribe' | 'unsubscribed';

/** One contact's state as seen from the user's side (RFC 6121 §A.1). */
export interface SubState {
  subscription: Subscription;
  /** The user asked the contact for a subscription (ask='subscribe'). */
  pendingOut: boolean;
  /** The contact asked the user for a subscription and waits for an answer. */
  pendingIn: boolean;
  /** The user approved in advance (RFC 6121 §3.4). */
  approved: boolean;
}

export interface Transition {
  next: SubState;
  /** Outbound: route the stanza to the contact. Inbound: deliver it to the user's resources. */
  pass: boolean;
  /** A stanza the server sends back on the user's behalf (an automatic approval). */
  autoReply: 'subscribed' | null;
}

export function isSubscriptionStanza(type: string | undefined): type is SubscriptionStanza {
  return type === 'subscribe' || type === 'subscribed' || type === 'unsubscribe' || type === 'unsubscribed';
}

/** Does the user see the contact's presence (subscription to the contact)? */
export function hasTo(s: Subscription): boolean {
  return s === 'to' || s === 'both';
}
/** Does the contact see the user's presence (subscription from the contact)? */
export function hasFrom(s: Subscription): boolean {
  return s === 'from' || s === 'both';
}

function make(to: boolean, from: boolean): Subscription {
  return to ? (from ? 'both' : 'to') : from ? 'from' : 'none';
}

/** Drops flags the RFC states cannot hold: no pending-out once subscribed to, no pending-in once subscribed from. */
export function normalize(s: SubState): SubState {
  const to = hasTo(s.subscription);
  const from = hasFrom(s.subscription);
  return {
    subscription: s.subscription,
    pendingOut: s.pendingOut && !to,
    pendingIn: s.pendingIn && !from,
    approved: s.approved && !from,
  };
}

export function sameState(a: SubState, b: SubState): boolean {
  return a.subscription === b.subscription && a.pendingOut === b.pendingOut && a.pendingIn === b.pendingIn && a.approved === b.approved;
}

/** RFC 6121 §A.2: the user sends a subscription stanza to the contact. */
export function outbound(type: SubscriptionStanza, current: SubState): Transition {
  const s = normalize(current);
  const to = hasTo(s.subscription);
  const from = hasFrom(s.subscription);
  switch (type) {
    case 'subscribe':
      // §A.2.1: always routed; asks unless already subscribed to.
      return { next: { ...s, pendingOut: !to }, pass: true, autoReply: null };
    case 'unsubscribe':
      // §A.2.2: always routed; cancels the subscription to the contact and any request for one.
      return { next: { ...s, subscription: make(false, from), pendingOut: false }, pass: true, autoReply: null };
    case 'subscribed':
      // §A.2.3: approves a pending request; §3.4: without one, a pre-approval that is never routed.
      if (s.pendingIn) {
        return { next: { ...s, subscription: make(to, true), pendingIn: false, approved: false }, pass: true, autoReply: null };
      }
      if (from) return { next: s, pass: false, autoReply: null };
      return { next: { ...s, approved: true }, pass: false, autoReply: null };
    case 'unsubscribed':
      // §A.2.4: refuses a pending request or cancels the contact's subscription; also withdraws a pre-approval.
      if (s.pendingIn || from) {
        return { next: { ...s, subscription: make(to, false), pendingIn: false, approved: false }, pass: true, autoReply: null };
      }
      return { next: { ...s, approved: false }, pass: false, autoReply: null };
  }
}

/** RFC 6121 §A.3: the user's server receives a subscription stanza from the contact. */
export function inbound(type: SubscriptionStanza, current: SubState): Transition {
  const s = normalize(current);
  const to = hasTo(s.subscription);
  const from = hasFrom(s.subscription);
  switch (type) {
    case 'subscribe':
      // §A.3.1 / §3.1.3: already subscribed → approve again automatically; pre-approved → approve now.
      if (from) return { next: s, pass: false, autoReply: 'subscribed' };
      if (s.approved) {
        return { next: { ...s, subscription: make(to, true), approved: false, pendingIn: false }, pass: false, autoReply: 'subscribed' };
      }
      if (s.pendingIn) return { next: s, pass: false, autoReply: null };
      return { next: { ...s, pendingIn: true }, pass: true, autoReply: null };
    case 'unsubscribe': {
      // §A.3.2: the contact no longer wants the user's presence (or withdraws its request).
      const next = { ...s, subscription: make(to, false), pendingIn: false };
      return { next, pass: !sameState(s, next), autoReply: null };
    }
    case 'subscribed': {
      // §A.3.3: only an answer to our own request counts.
      if (!s.pendingOut) return { next: s, pass: false, autoReply: null };
      return { next: { ...s, subscription: make(true, from), pendingOut: false }, pass: true, autoReply: null };
    }
    case 'unsubscribed': {
      // §A.3.4: the contact refuses our request or cancels our subscription.
      const next = { ...s, subscription: make(false, from), pendingOut: false };
      return { next, pass: !sameState(s, next), autoReply: null };
    }
  }
}
