// XMPP addresses (RFC 7622): [localpart "@"] domainpart ["/" resourcepart].
import { domainToASCII } from 'node:url';

export class JidError extends Error {
  constructor(readonly reason: string) {
    super(`invalid JID: ${reason}`);
    this.name = 'JidError';
  }
}

/**
 * An address whose parts are already prepared. Build one from untrusted input with parseJid; the
 * constructor does no checking.
 */
export class Jid {
  #str: string | undefined;
  #bareStr: string | undefined;

  constructor(
    readonly local: string,
    readonly domain: string,
    readonly resource: string = '',
  ) {}

  isBare(): boolean {
    return this.resource === '';
  }

  bare(): Jid {
    return this.isBare() ? this : new Jid(this.local, this.domain);
  }

  bareString(): string {
    return (this.#bareStr ??= this.local === '' ? this.domain : `${this.local}@${this.domain}`);
  }

  toString(): string {
    return (this.#str ??= this.isBare() ? this.bareString() : `${this.bareString()}/${this.resource}`);
  }

  equals(other: Jid | null | undefined): boolean {
    return (
      other != null &&
      (other === this ||
        (this.local === other.local && this.domain === other.domain && this.resource === other.resource))
    );
  }

  /** The same bare address with another resource; an empty one gives the bare JID. */
  withResource(resource: string): Jid {
    if (resource === '') return this.bare();
    return new Jid(this.local, this.domain, prepareResource(resource));
  }
}

const MAX_PART_BYTES = 1023;
// Three parts of at most 1023 bytes plus separators; no valid JID comes close, and this bounds the
// normalization work spent on garbage.
const MAX_INPUT_LENGTH = 4 * 1024;

/** Printable ASCII without upper-case letters: preparation changes nothing. */
const SIMPLE_ASCII = /^[\x21-\x40\x5B-\x7E]*$/;
/** Resources keep their case, and spaces. */
const PRINTABLE_ASCII = /^[\x20-\x7E]*$/;
const LOCAL_FORBIDDEN_ASCII = /["&':<>]/;
// Besides the characters RFC 7622 §3.3.1 excludes: whitespace, controls, format characters,
// private use and lone surrogates.
const LOCAL_FORBIDDEN = /["&'/:<>@\p{White_Space}\p{Cc}\p{Cf}\p{Co}\p{Cs}]/u;
const RESOURCE_FORBIDDEN = /[\p{Cc}\p{Cs}]/u;
const ASCII_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
/** Labels of at most 63 letters, digits and inner hyphens, in one pass. */
const ASCII_DOMAIN = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const UNICODE_LABEL = /^[\p{L}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?$/u;
const IDEOGRAPHIC_STOPS = /[\u3002\uFF0E\uFF61]/g;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HEX_GROUP = /^[0-9a-f]{1,4}$/;

/**
 * Addresses parsed lately, by their text: a message's to and from are parsed on the way in, routed,
 * archived and delivered, the same few addresses again and again (preparation's tests were 3 % of the
 * server's CPU in one-to-one chat). A Jid never changes, so one may serve every caller. Two
 * generations of at most PARSED_KEPT each: when the newer fills, it becomes the older and the older
 * goes, so addresses in use stay. Only texts up to PARSED_LENGTH are kept: a client sending long
 * valid addresses by the thousand holds a few megabytes here at most.
 */
const PARSED_KEPT = 8_192;
const PARSED_LENGTH = 128;
let parsedNew = new Map<string, Jid>();
let parsedOld = new Map<string, Jid>();

export function parseJid(s: string): Jid {
  let jid = parsedNew.get(s);
  if (jid !== undefined) return jid;
  if (s.length > PARSED_LENGTH) return parseUncached(s);
  jid = parsedOld.get(s) ?? parseUncached(s);
  if (parsedNew.size >= PARSED_KEPT) {
    parsedOld = parsedNew;
    parsedNew = new Map();
  }
  parsedNew.set(s, jid);
  return jid;
}

function parseUncached(s: string): Jid {
  if (s.length > MAX_INPUT_LENGTH) throw new JidError('too long');

  // The resource may itself contain '/' and '@', so split there first.
  const slash = s.indexOf('/');
  const bareEnd = slash === -1 ? s.length : slash;
  const at = s.indexOf('@');
  const localEnd = at !== -1 && at < bareEnd ? at : -1;

  if (localEnd === 0) throw new JidError('empty localpart');
  if (slash === s.length - 1) throw new JidError('empty resourcepart');

  const local = localEnd === -1 ? '' : prepareLocal(s.slice(0, localEnd));
  const domain = prepareDomain(s.slice(localEnd + 1, bareEnd));
  const resource = slash === -1 ? '' : prepareResource(s.slice(slash + 1));
  return new Jid(local, domain, resource);
}

export function tryParseJid(s: string): Jid | null {
  try {
    return parseJid(s);
  } catch (err) {
    if (err instanceof JidError) return null;
    throw err;
  }
}

function checkBytes(part: string, name: string): void {
  if (part === '') throw new JidError(`empty ${name}`);
  if (Buffer.byteLength(part, 'utf8') > MAX_PART_BYTES) throw new JidError(`${name} too long`);
}

/** Close to nodeprep: compatibility-normalize, then fold case. */
function prepareLocal(raw: string): string {
  if (SIMPLE_ASCII.test(raw)) {
    if (LOCAL_FORBIDDEN_ASCII.test(raw)) throw new JidError('forbidden character in localpart');
    if (raw.length > MAX_PART_BYTES) throw new JidError('localpart too long');
    return raw;
  }
  const local = raw.normalize('NFKC').toLowerCase().normalize('NFKC');
  if (LOCAL_FORBIDDEN.test(local)) throw new JidError('forbidden character in localpart');
  checkBytes(local, 'localpart');
  return local;
}

function prepareResource(raw: string): string {
  if (PRINTABLE_ASCII.test(raw)) {
    if (raw.length > MAX_PART_BYTES) throw new JidError('resourcepart too long');
    return raw;
  }
  const resource = raw.normalize('NFC');
  if (RESOURCE_FORBIDDEN.test(resource)) throw new JidError('forbidden character in resourcepart');
  checkBytes(resource, 'resourcepart');
  return resource;
}

/** Input already known to be printable lower-case ASCII. */
function prepareAsciiDomain(raw: string): string {
  const domain = raw.endsWith('.') ? raw.slice(0, -1) : raw;
  if (domain === '') throw new JidError('empty domainpart');
  if (domain.length > MAX_PART_BYTES) throw new JidError('domainpart too long');
  if (domain.startsWith('[')) {
    if (domain.endsWith(']') && isIPv6(domain.slice(1, -1))) return domain;
    throw new JidError('invalid IPv6 literal');
  }
  if (!ASCII_DOMAIN.test(domain)) throw new JidError('invalid domain label');
  return domain;
}

function prepareDomain(raw: string): string {
  if (SIMPLE_ASCII.test(raw)) return prepareAsciiDomain(raw);
  // Lower-casing can leave combining marks out of canonical order (U+0130 gives i U+0307), so normalise
  // again: the domain must be the same string however it was written, or a second parse changes it.
  const mapped = raw.normalize('NFKC').toLowerCase().normalize('NFKC').replace(IDEOGRAPHIC_STOPS, '.');
  if (SIMPLE_ASCII.test(mapped)) return prepareAsciiDomain(mapped);

  const domain = mapped.endsWith('.') ? mapped.slice(0, -1) : mapped;
  checkBytes(domain, 'domainpart');
  for (const label of domain.split('.')) {
    if (ASCII_LABEL.test(label)) {
      if (label.length > 63) throw new JidError('invalid domain label');
      continue;
    }
    // The A-label is what goes into DNS, so that is the form the 63-byte limit applies to.
    const ace = UNICODE_LABEL.test(label) ? domainToASCII(label) : '';
    if (ace === '' || ace.length > 63) throw new JidError('invalid domain label');
  }
  return domain;
}

function isIPv6(s: string): boolean {
  const halves = s.split('::');
  if (halves.length > 2) return false;
  const head = halves[0] === '' ? [] : halves[0].split(':');
  const tail = halves.length === 2 && halves[1] !== '' ? halves[1].split(':') : [];
  const groups = [...head, ...tail];
  let count = groups.length;
  // An embedded IPv4 address may end the literal and counts as two groups.
  const last = halves.length === 2 ? tail[tail.length - 1] : head[head.length - 1];
  if (last !== undefined && IPV4.test(last)) {
    groups.pop();
    count++;
  }
  if (!groups.every((g) => HEX_GROUP.test(g))) return false;
  return halves.length === 2 ? count <= 7 : count === 8;
}
