// What a fuzz target is: a name, the protocol files it covers, tokens worth splicing into inputs, and a
// setup that returns the function run on each input. The function throws only when it has found a
// defect (an unexpected exception, an inconsistent result); the codec's own documented errors are caught
// inside it. Targets get the protocol modules handed to them (instrumented for coverage), never import them.
export type Protocol = {
  caps: typeof import('../protocol/caps.js');
  datetime: typeof import('../protocol/datetime.js');
  delay: typeof import('../protocol/delay.js');
  errors: typeof import('../protocol/errors.js');
  forms: typeof import('../protocol/forms.js');
  framing: typeof import('../protocol/framing.js');
  httpUpload: typeof import('../protocol/http-upload.js');
  interactions: typeof import('../protocol/interactions.js');
  jid: typeof import('../protocol/jid.js');
  mam: typeof import('../protocol/mam.js');
  moderation: typeof import('../protocol/moderation.js');
  muc: typeof import('../protocol/muc.js');
  namespaces: typeof import('../protocol/namespaces.js');
  principal: typeof import('../protocol/principal.js');
  pubsub: typeof import('../protocol/pubsub.js');
  rsm: typeof import('../protocol/rsm.js');
  sasl: typeof import('../protocol/sasl.js');
  saslprep: typeof import('../protocol/saslprep.js');
  search: typeof import('../protocol/search.js');
  stanzaHead: typeof import('../protocol/stanza-head.js');
  xmlStream: typeof import('../protocol/xml-stream.js');
  xml: typeof import('../protocol/xml.js');
};

/** File names under protocol/ (without .js) and the key each module has in Protocol. */
export const PROTOCOL_MODULES: Record<keyof Protocol, string> = {
  caps: 'caps', datetime: 'datetime', delay: 'delay', errors: 'errors', forms: 'forms', framing: 'framing',
  httpUpload: 'http-upload', interactions: 'interactions', jid: 'jid', mam: 'mam', moderation: 'moderation',
  muc: 'muc', namespaces: 'namespaces', principal: 'principal', pubsub: 'pubsub', rsm: 'rsm', sasl: 'sasl',
  saslprep: 'saslprep', search: 'search', stanzaHead: 'stanza-head', xmlStream: 'xml-stream', xml: 'xml',
};

export type RunInput = (data: Buffer) => void | Promise<void>;

export interface FuzzTarget {
  name: string;
  /** protocol/ files (without .js) whose branches this target is meant to cover, for the report. */
  files: string[];
  /** Tokens the mutator inserts: names, delimiters, attribute prefixes of the format. */
  dictionary: string[];
  /** Longest input tried, in bytes. */
  maxLen?: number;
  setup(p: Protocol): RunInput | Promise<RunInput>;
}

/** A defect found by a target: an invariant of the codec does not hold. */
export class Violation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Violation';
  }
}

export function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Violation(message);
}

/**
 * Re-throws err unless it is an instance of one of the documented error classes. Error itself matches
 * only exactly (a TypeError or RangeError from a codec that documents `throws Error` is a defect).
 */
export function expectOnly(err: unknown, ...classes: (abstract new (...args: never[]) => Error)[]): void {
  for (const c of classes) {
    if (c === Error ? (err as object)?.constructor === Error : err instanceof c) return;
  }
  throw err;
}

/** A small deterministic generator for choices a target derives from its input (chunk splits). */
export function seededRandom(data: Uint8Array): () => number {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i]!, 0x01000193);
  let s = h >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}
