// When a client's stanza is handled (XEP-0198 'h'): not when it arrives, but once it is delivered,
// stored, committed in a room's archive or answered with an error. Handling that stays synchronous costs
// nothing here; code that continues a stanza's handling later takes a hold on it (hold(stanza)) while the
// stanza is being handled, and releases it when that part is done. The stanza counts as handled once
// the synchronous pass has returned and every hold is released.
import type { Element } from '../../protocol/xml.js';

/** Releases one hold (calling it again does nothing). */
export type Done = () => void;

/** Whoever counts the stanza: asked for its completion only when some handling goes asynchronous. */
export interface CompletionSource {
  /** The stanza numbered seq is not complete yet; the returned function completes it. */
  pending(seq: number): Done;
}

class Frame {
  holds = 0;
  returned = false;
  final: Done | null;
  constructor(readonly stanza: Element, final: Done | null, readonly source: CompletionSource | null, readonly seq: number) {
    this.final = final;
  }
}

let current: Frame | null = null;

function run(frame: Frame, handle: () => void): void {
  const outer = current;
  current = frame;
  try {
    handle();
  } finally {
    current = outer;
    frame.returned = true;
    if (frame.holds === 0) frame.final?.();
  }
}

/** Handles a counted stanza (seq from source); the source hears of it only if a hold is taken. */
export function handleCounted(stanza: Element, source: CompletionSource, seq: number, handle: () => void): void {
  run(new Frame(stanza, null, source, seq), handle);
}

/**
 * Continues (or starts) handling stanza with done to call once it is complete: after handle returns,
 * or once the holds taken meanwhile are released. Without done, just runs handle.
 */
export function continueWith(stanza: Element, done: Done | null, handle: () => void): void {
  if (done === null) return handle();
  run(new Frame(stanza, done, null, 0), handle);
}

/**
 * Takes a hold on stanza if it is the one being handled: its handling is not complete until the
 * returned function is called. Null when nothing waits for the stanza's completion.
 */
export function hold(stanza: Element): Done | null {
  const f = current;
  if (f === null || f.stanza !== stanza) return null;
  if (f.holds === 0 && f.final === null && f.source) f.final = f.source.pending(f.seq);
  f.holds++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--f.holds === 0 && f.returned) f.final?.();
  };
}
