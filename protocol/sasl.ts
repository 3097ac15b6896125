// Server side of the SASL mechanisms: SCRAM (RFC 5802, RFC 7677) with and without channel binding,
// and PLAIN (RFC 4616).
import { createHash, createHmac, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { saslprep } from './saslprep.js';

export type SaslCondition =
  | 'aborted' | 'account-disabled' | 'credentials-expired' | 'encryption-required'
  | 'incorrect-encoding' | 'invalid-authzid' | 'invalid-mechanism' | 'malformed-request'
  | 'mechanism-too-weak' | 'not-authorized' | 'temporary-auth-failure';

export type SaslStep =
  | { kind: 'challenge'; data: Buffer }
  | { kind: 'success'; data: Buffer | null; username: string; authzid: string }
  /** `username`: set when the credentials of a named account were wrong, so that it can be throttled. */
  | { kind: 'failure'; condition: SaslCondition; text?: string; username?: string };

export interface SaslServer {
  /** An empty initial response means the client sent none; the reply is then an empty challenge. */
  start(initialResponse: Buffer): Promise<SaslStep>;
  next(response: Buffer): Promise<SaslStep>;
}

function failure(condition: SaslCondition, text?: string): SaslStep {
  return text === undefined ? { kind: 'failure', condition } : { kind: 'failure', condition, text };
}

const EMPTY_CHALLENGE: SaslStep = { kind: 'challenge', data: Buffer.alloc(0) };
const OUT_OF_ORDER = 'exchange already finished';

/**
 * Base64 as XMPP carries it (RFC 6120 §6.4.2): canonical alphabet and padding, no whitespace.
 * '=' stands for an empty response. Returns null for anything else.
 */
export function decodeBase64Strict(s: string): Buffer | null {
  if (s === '' || s === '=') return Buffer.alloc(0);
  const data = Buffer.from(s, 'base64');
  // Node's decoder skips what it does not understand; a round trip shows whether it had to.
  return data.toString('base64') === s ? data : null;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The message as text, or null if it is not UTF-8 or contains NUL. */
function decodeMessage(data: Buffer): string | null {
  let text: string;
  try {
    text = utf8.decode(data);
  } catch {
    return null;
  }
  return text.includes('\0') ? null : text;
}

// --- SCRAM ---------------------------------------------------------------------------------------

export type ScramHash = 'SHA-1' | 'SHA-256';

export interface ScramCredentials {
  hash: ScramHash;
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

export function scramMechanismName(hash: ScramHash, plus: boolean): string {
  return `SCRAM-${hash}${plus ? '-PLUS' : ''}`;
}

const DIGEST: Record<ScramHash, { name: string; length: number }> = {
  'SHA-1': { name: 'sha1', length: 20 },
  'SHA-256': { name: 'sha256', length: 32 },
};

const DEFAULT_ITERATIONS = 4096;

function hmac(hash: ScramHash, key: Buffer, data: string | Buffer): Buffer {
  return createHmac(DIGEST[hash].name, key).update(data).digest();
}

function h(hash: ScramHash, data: Buffer): Buffer {
  return createHash(DIGEST[hash].name).update(data).digest();
}

function keysFromSalted(hash: ScramHash, salt: Buffer, iterations: number, salted: Buffer): ScramCredentials {
  return {
    hash,
    salt,
    iterations,
    storedKey: h(hash, hmac(hash, salted, 'Client Key')),
    serverKey: hmac(hash, salted, 'Server Key'),
  };
}

export function deriveScramCredentials(
  password: string,
  hash: ScramHash,
  iterations = DEFAULT_ITERATIONS,
  salt: Buffer = randomBytes(16),
): ScramCredentials {
  const { name, length } = DIGEST[hash];
  const salted = pbkdf2Sync(saslprep(password), salt, iterations, length, name);
  return keysFromSalted(hash, salt, iterations, salted);
}

const pbkdf2Async = promisify(pbkdf2);

/** As deriveScramCredentials, without blocking the event loop for the key stretching. */
export async function deriveScramCredentialsAsync(
  password: string,
  hash: ScramHash,
  iterations = DEFAULT_ITERATIONS,
  salt: Buffer = randomBytes(16),
): Promise<ScramCredentials> {
  const { name, length } = DIGEST[hash];
  const salted = await pbkdf2Async(saslprep(password), salt, iterations, length, name);
  return keysFromSalted(hash, salt, iterations, salted);
}

/** Checks a clear-text password (from PLAIN) against stored SCRAM keys. */
export async function verifyPasswordAgainstScram(password: string, creds: ScramCredentials): Promise<boolean> {
  let derived: ScramCredentials;
  try {
    derived = await deriveScramCredentialsAsync(password, creds.hash, creds.iterations, creds.salt);
  } catch {
    return false; // saslprep refused the password, so it cannot be the stored one
  }
  return derived.storedKey.length === creds.storedKey.length && timingSafeEqual(derived.storedKey, creds.storedKey);
}

// Salts for unknown users are derived from this, so that they look stable but reveal nothing.
const FAKE_SALT_SECRET = randomBytes(32);

function fakeCredentials(hash: ScramHash, username: string): ScramCredentials {
  const length = DIGEST[hash].length;
  return {
    hash,
    salt: hmac(hash, FAKE_SALT_SECRET, `${hash}\0${username}`).subarray(0, 16),
    iterations: DEFAULT_ITERATIONS,
    storedKey: randomBytes(length),
    serverKey: randomBytes(length),
  };
}

export interface ScramServerOptions {
  hash: ScramHash;
  /** Whether this is the -PLUS variant. */
  plus: boolean;
  /** Channel binding of the underlying connection, e.g. tls-exporter; null when there is none. */
  channelBinding?: { type: string; data: Buffer } | null;
  /** Whether -PLUS mechanisms were offered: a client that claims we did not is being downgraded. */
  offeredPlus: boolean;
  lookup: (username: string) => Promise<ScramCredentials | null>;
  /** Server nonce; only tests should set it. */
  nonce?: string;
}

/** RFC 5802 saslname: '=2C' and '=3D' stand for ',' and '='; any other '=' is malformed. */
function decodeSaslname(s: string): string | null {
  if (!/^(?:[^=,]|=2C|=3D)*$/.test(s)) return null;
  return s.replace(/=2C|=3D/g, (m) => (m === '=2C' ? ',' : '='));
}

/** printable = %x21-2B / %x2D-7E */
const NONCE = /^[\x21-\x2B\x2D-\x7E]+$/;
const CB_NAME = /^[A-Za-z0-9.-]+$/;
/** Extensions are ignored, but must at least look like attributes. */
const EXTENSION = /^[A-Za-z]=/;

type ScramState =
  | { step: 'first' }
  | {
      step: 'final';
      gs2Header: string;
      cbData: Buffer | null;
      nonce: string;
      authMessagePrefix: string;
      creds: ScramCredentials;
      known: boolean;
      username: string;
      authzid: string;
    }
  | { step: 'done' };

export class ScramServer implements SaslServer {
  #state: ScramState = { step: 'first' };

  constructor(private readonly opts: ScramServerOptions) {}

  async start(initialResponse: Buffer): Promise<SaslStep> {
    return initialResponse.length === 0 ? EMPTY_CHALLENGE : this.next(initialResponse);
  }

  async next(response: Buffer): Promise<SaslStep> {
    const state = this.#state;
    this.#state = { step: 'done' };
    const text = decodeMessage(response);
    if (state.step === 'done') return failure('malformed-request', OUT_OF_ORDER);
    if (text === null) return failure('malformed-request', 'message is not UTF-8 or contains NUL');
    return state.step === 'first' ? this.#clientFirst(text) : this.#clientFinal(text, state);
  }

  async #clientFirst(msg: string): Promise<SaslStep> {
    const { hash, plus, offeredPlus } = this.opts;

    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    const c1 = msg.indexOf(',');
    const c2 = c1 === -1 ? -1 : msg.indexOf(',', c1 + 1);
    if (c2 === -1) return failure('malformed-request', 'missing GS2 header');
    const flag = msg.slice(0, c1);
    const authzField = msg.slice(c1 + 1, c2);
    const gs2Header = msg.slice(0, c2 + 1);
    const bare = msg.slice(c2 + 1);

    let cbData: Buffer | null = null;
    if (flag.startsWith('p=')) {
      if (!plus) return failure('malformed-request', 'channel binding requested with a non-PLUS mechanism');
      const cb = this.opts.channelBinding;
      const cbName = flag.slice(2);
      if (!CB_NAME.test(cbName)) return failure('malformed-request', 'bad channel binding name');
      if (!cb || cb.type !== cbName) return failure('not-authorized', `unsupported channel binding type ${cbName}`);
      cbData = cb.data;
    } else if (flag === 'n' || flag === 'y') {
      if (plus) return failure('malformed-request', 'PLUS mechanism without channel binding');
      if (flag === 'y' && offeredPlus) return failure('not-authorized', 'channel binding downgrade');
    } else {
      return failure('malformed-request', 'bad GS2 channel binding flag');
    }

    let authzid = '';
    if (authzField !== '') {
      const decoded = authzField.startsWith('a=') ? decodeSaslname(authzField.slice(2)) : null;
      if (!decoded) return failure('malformed-request', 'bad authzid');
      authzid = decoded;
    }

    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    const attrs = bare.split(',');
    if (attrs[0]?.startsWith('m=')) return failure('malformed-request', 'unsupported mandatory extension');
    if (attrs.length < 2 || !attrs[0].startsWith('n=') || !attrs[1].startsWith('r=')) {
      return failure('malformed-request', 'expected n= and r= attributes');
    }
    if (!attrs.slice(2).every((a) => EXTENSION.test(a))) return failure('malformed-request', 'bad extension');
    const rawUser = decodeSaslname(attrs[0].slice(2));
    if (!rawUser) return failure('malformed-request', 'bad username encoding');
    const clientNonce = attrs[1].slice(2);
    if (!NONCE.test(clientNonce)) return failure('malformed-request', 'bad nonce');

    let username: string;
    try {
      username = saslprep(rawUser);
    } catch {
      return failure('not-authorized', 'username contains prohibited characters');
    }
    if (username === '') return failure('not-authorized');

    let found: ScramCredentials | null;
    try {
      found = await this.opts.lookup(username);
    } catch {
      return failure('temporary-auth-failure');
    }
    // Credentials for another hash cannot verify this exchange; treat them as absent. An unknown
    // user still gets a plausible challenge, so that accounts cannot be probed for.
    const usable = found?.hash === hash ? found : null;
    const known = usable !== null;
    const creds = usable ?? fakeCredentials(hash, username);

    const nonce = clientNonce + (this.opts.nonce ?? randomBytes(24).toString('base64'));
    const serverFirst = `r=${nonce},s=${creds.salt.toString('base64')},i=${creds.iterations}`;
    this.#state = {
      step: 'final',
      gs2Header,
      cbData,
      nonce,
      authMessagePrefix: `${bare},${serverFirst},`,
      creds,
      known,
      username,
      authzid,
    };
    return { kind: 'challenge', data: Buffer.from(serverFirst, 'utf8') };
  }

  #clientFinal(msg: string, st: Extract<ScramState, { step: 'final' }>): SaslStep {
    const { hash } = st.creds;

    // client-final-message = channel-binding "," nonce ["," extensions] "," proof
    const proofAt = msg.lastIndexOf(',p=');
    if (proofAt === -1) return failure('malformed-request', 'missing proof');
    const withoutProof = msg.slice(0, proofAt);
    const attrs = withoutProof.split(',');
    if (attrs.length < 2 || !attrs[0].startsWith('c=') || !attrs[1].startsWith('r=')) {
      return failure('malformed-request', 'expected c= and r= attributes');
    }
    const cbInput = decodeBase64Strict(attrs[0].slice(2));
    const proof = decodeBase64Strict(msg.slice(proofAt + 3));
    if (!cbInput || !proof) return failure('malformed-request', 'bad base64');
    if (proof.length !== DIGEST[hash].length) return failure('malformed-request', 'bad proof length');

    const expectedCb = Buffer.concat([Buffer.from(st.gs2Header, 'utf8'), st.cbData ?? Buffer.alloc(0)]);
    if (!cbInput.equals(expectedCb)) return failure('not-authorized', 'channel binding mismatch');
    if (attrs[1].slice(2) !== st.nonce) return failure('not-authorized', 'nonce mismatch');

    const authMessage = st.authMessagePrefix + withoutProof;
    const clientSignature = hmac(hash, st.creds.storedKey, authMessage);
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i] ^ clientSignature[i];
    const matches = timingSafeEqual(h(hash, clientKey), st.creds.storedKey);
    if (!matches || !st.known) return { kind: 'failure', condition: 'not-authorized', username: st.username };

    const serverSignature = hmac(hash, st.creds.serverKey, authMessage);
    return {
      kind: 'success',
      data: Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8'),
      username: st.username,
      authzid: st.authzid,
    };
  }
}

// --- PLAIN ---------------------------------------------------------------------------------------

export interface PlainServerOptions {
  verify: (username: string, password: string) => Promise<boolean>;
}

export class PlainServer implements SaslServer {
  #done = false;

  constructor(private readonly opts: PlainServerOptions) {}

  async start(initialResponse: Buffer): Promise<SaslStep> {
    return initialResponse.length === 0 ? EMPTY_CHALLENGE : this.next(initialResponse);
  }

  async next(response: Buffer): Promise<SaslStep> {
    if (this.#done) return failure('malformed-request', OUT_OF_ORDER);
    this.#done = true;

    // message = [authzid] NUL authcid NUL passwd
    let text: string;
    try {
      text = utf8.decode(response);
    } catch {
      return failure('malformed-request', 'message is not UTF-8');
    }
    const fields = text.split('\0');
    if (fields.length !== 3) return failure('malformed-request', 'expected exactly two NUL separators');
    const [authzid, rawUser, rawPassword] = fields;

    let username: string;
    let password: string;
    try {
      username = saslprep(rawUser);
      password = saslprep(rawPassword);
    } catch {
      return failure('not-authorized');
    }
    if (username === '' || password === '') return failure('not-authorized');

    let ok: boolean;
    try {
      ok = await this.opts.verify(username, password);
    } catch {
      return failure('temporary-auth-failure');
    }
    return ok ? { kind: 'success', data: null, username, authzid } : { kind: 'failure', condition: 'not-authorized', username };
  }
}

// --- SCRAM client --------------------------------------------------------------------------------

/**
 * Client side of SCRAM without channel binding (gs2 flag 'n'), for the server's own self-test:
 * first() gives the client-first-message, final() answers the server-first-message, and
 * verifyServer() checks the server's signature in the server-final-message. final() rejects a
 * malformed server message or a nonce that is not the client's extended.
 */
export class ScramClient {
  readonly #nonce: string;
  #authMessage = '';
  #serverKey: Buffer | null = null;

  constructor(private readonly hash: ScramHash, private readonly username: string, private readonly password: string,
    nonce: string = randomBytes(18).toString('base64')) {
    this.#nonce = nonce;
  }

  #bare(): string {
    const name = saslprep(this.username).replace(/=/g, '=3D').replace(/,/g, '=2C');
    return `n=${name},r=${this.#nonce}`;
  }

  first(): Buffer {
    return Buffer.from(`n,,${this.#bare()}`, 'utf8');
  }

  /** Derives the keys without blocking the event loop (the self-test runs inside the server too). */
  async final(serverFirst: Buffer): Promise<Buffer> {
    const text = serverFirst.toString('utf8');
    const attrs = new Map(text.split(',').map((a) => [a.slice(0, 1), a.slice(2)] as const));
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (attrs.has('m')) throw new Error('server requires an unsupported SCRAM extension');
    if (!nonce || !nonce.startsWith(this.#nonce) || nonce === this.#nonce) throw new Error('server nonce does not extend the client nonce');
    if (!salt || !Number.isInteger(iterations) || iterations < 1) throw new Error('malformed server-first-message');
    const { name, length } = DIGEST[this.hash];
    const salted = await pbkdf2Async(saslprep(this.password), Buffer.from(salt, 'base64'), iterations, length, name);
    const clientKey = hmac(this.hash, salted, 'Client Key');
    const storedKey = h(this.hash, clientKey);
    this.#serverKey = hmac(this.hash, salted, 'Server Key');
    const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${nonce}`;
    this.#authMessage = `${this.#bare()},${text},${withoutProof}`;
    const signature = hmac(this.hash, storedKey, this.#authMessage);
    const proof = Buffer.alloc(length);
    for (let i = 0; i < length; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
  }

  /** True when the server-final-message proves the server knows the password's keys. */
  verifyServer(serverFinal: Buffer): boolean {
    if (!this.#serverKey) return false;
    const m = /^v=([A-Za-z0-9+/=]+)$/.exec(serverFinal.toString('utf8'));
    if (!m) return false;
    const expected = hmac(this.hash, this.#serverKey, this.#authMessage);
    const got = Buffer.from(m[1]!, 'base64');
    return got.length === expected.length && timingSafeEqual(got, expected);
  }
}
