// Streaming parser for one XMPP stream (RFC 6120 §4, §11): the root element opens the stream, each
// depth-1 element is delivered whole as a stanza. Strict where XMPP is strict: no DTD, comments,
// processing instructions or undefined entities (restricted-xml / not-well-formed), and limits on
// stanza size and nesting depth (policy-violation). Scans with indexOf rather than per character,
// and keeps an unfinished token for the next chunk, so multi-byte characters and tags split across
// TCP reads parse.
import { StringDecoder } from 'node:string_decoder';
import { Element, type Attrs } from './xml.js';
import { NS } from './namespaces.js';

export interface XmlStreamEvents {
  streamStart(name: string, attrs: Attrs): void;
  stanza(stanza: Element): void;
  streamEnd(): void;
  /** A stream-level error condition of RFC 6120 §4.9.3; the parser stops after it. */
  error(condition: string, text: string): void;
}

export interface XmlStreamLimits {
  /** Characters a single depth-1 element may take, markup included. */
  maxStanzaSize: number;
  /** Element nesting allowed inside the stream root. */
  maxDepth: number;
}

export const DEFAULT_LIMITS: XmlStreamLimits = { maxStanzaSize: 256 * 1024, maxDepth: 32 };

// Characters XML 1.0 forbids anywhere in a document.
const INVALID_CHARS = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/;
const NAME = /^[A-Za-z_:\u00C0-\uFFFD][-A-Za-z0-9_:.\u00B7\u00C0-\uFFFD]*$/;
const WS_ONLY = /^[ \t\r\n]*$/;
const REPLACEMENT_UTF8 = Buffer.from([0xef, 0xbf, 0xbd]);
/** Longest entity or character reference accepted, '&' and ';' included. */
const MAX_REFERENCE = 32;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** Decodes the five predefined entities and character references; null when something else is there. */
export function decodeEntities(s: string): string | null {
  if (s.indexOf('&') === -1) return s;
  let out = '';
  let i = 0;
  for (;;) {
    const amp = s.indexOf('&', i);
    if (amp === -1) return out + s.slice(i);
    const semi = s.indexOf(';', amp);
    if (semi === -1) return null;
    out += s.slice(i, amp);
    // No reference is that long (only a character reference padded with zeros could be).
    if (semi - amp > MAX_REFERENCE) return null;
    const ref = s.slice(amp + 1, semi);
    if (ref.charCodeAt(0) === 35 /* # */) {
      const code = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      const valid = /^#(x[0-9A-Fa-f]+|[0-9]+)$/.test(ref);
      if (!valid || !(code === 9 || code === 10 || code === 13 || (code >= 0x20 && code <= 0xd7ff) ||
          (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff))) return null;
      out += String.fromCodePoint(code);
    } else {
      const ch = PREDEFINED[ref];
      if (ch === undefined) return null;
      out += ch;
    }
    i = semi + 1;
  }
}

/** A start tag as read from a buffer: end is the index just after its '>'. */
export interface StartTag { name: string; attrs: Attrs; selfClosing: boolean; end: number }

const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13;

/**
 * Reads the start tag at buf[pos] (a '<' followed by a name): the tag, 'more' when buf ends inside it,
 * or why it is not well-formed. The one reader of start tags, for the stream parser and for delivery's
 * look at a serialised stanza's head.
 */
export function readStartTag(buf: string, pos: number): StartTag | 'more' | { error: string } {
  return new StartTagReader().begin(buf, pos);
}

/** Where a start tag split across reads stopped: what follows the name, an attribute's name or its value. */
const enum Phase { Name, Gap, Slash, AttrName, BeforeValue, Value }

/**
 * A start tag read in pieces: 'more' means every character given so far is taken, and the next read
 * goes on from where this one stopped. A tag trickled in one byte per read is read in linear time
 * (holding it in the buffer and reading it again from '<' at every read was quadratic), and a
 * character that can never be in an attribute value fails as soon as it arrives.
 */
export class StartTagReader {
  private phase = Phase.Name;
  /** Characters of the name, attribute name or attribute value under way, from earlier reads. */
  private parts: string[] = [];
  private name = '';
  private attrs: Attrs = {};
  private attrName = '';
  private quote = '';
  private sawSpace = false;

  /** Starts on the tag at buf[pos] ('<'). */
  begin(buf: string, pos: number): StartTag | 'more' | { error: string } {
    if (this.parts.length) this.parts = [];
    return this.read(buf, pos + 1, Phase.Name, '', {}, '', '', false);
  }

  /** Goes on with the tag from buf[i]; a result's end is an index into this buf. */
  feed(buf: string, i: number): StartTag | 'more' | { error: string } {
    return this.read(buf, i, this.phase, this.name, this.attrs, this.attrName, this.quote, this.sawSpace);
  }

  // The state lives in locals and is stored only when a read ends inside the tag: the reader outlives
  // many tags, and storing each tag's new objects in it would cost the garbage collector on every tag.
  private read(buf: string, i: number, phase: Phase, name: string, attrs: Attrs, attrName: string, quote: string, sawSpace: boolean): StartTag | 'more' | { error: string } {
    const len = buf.length;
    if (phase === Phase.Name) {
      const from = i;
      while (i < len) {
        const ch = buf.charCodeAt(i);
        if (isSpace(ch) || ch === 47 || ch === 62) break;
        i++;
      }
      if (i >= len) { this.hold(buf, from); return this.pause(phase, name, attrs, attrName, quote, sawSpace); }
      name = this.taken(buf, from, i);
      if (!NAME.test(name)) return { error: 'invalid element name' };
      phase = Phase.Gap;
    }
    // Phases in the order a tag's parts come, each falling into the next.
    for (;;) {
      if (phase === Phase.Gap) {
        while (i < len && isSpace(buf.charCodeAt(i))) { sawSpace = true; i++; }
        if (i >= len) return this.pause(phase, name, attrs, attrName, quote, sawSpace);
        const ch = buf.charCodeAt(i);
        if (ch === 62 /* > */) return { name, attrs, selfClosing: false, end: i + 1 };
        if (ch === 47 /* / */) {
          phase = Phase.Slash;
          i++;
        } else {
          if (!sawSpace) return { error: 'attributes must be separated by white space' };
          phase = Phase.AttrName;
        }
      }
      if (phase === Phase.Slash) {
        if (i >= len) return this.pause(phase, name, attrs, attrName, quote, sawSpace);
        if (buf.charCodeAt(i) !== 62) return { error: 'expected > after /' };
        return { name, attrs, selfClosing: true, end: i + 1 };
      }
      if (phase === Phase.AttrName) {
        const eq = buf.indexOf('=', i);
        if (eq === -1) { this.hold(buf, i); return this.pause(phase, name, attrs, attrName, quote, sawSpace); }
        attrName = this.taken(buf, i, eq).trimEnd();
        if (!NAME.test(attrName)) return { error: 'invalid attribute name' };
        phase = Phase.BeforeValue;
        i = eq + 1;
      }
      if (phase === Phase.BeforeValue) {
        while (i < len && isSpace(buf.charCodeAt(i))) i++;
        if (i >= len) return this.pause(phase, name, attrs, attrName, quote, sawSpace);
        quote = buf[i]!;
        if (quote !== '"' && quote !== "'") return { error: 'attribute value must be quoted' };
        phase = Phase.Value;
        i++;
      }
      // Phase.Value
      const close = buf.indexOf(quote, i);
      const piece = close === -1 ? buf.slice(i) : buf.slice(i, close);
      if (piece.indexOf('<') !== -1 || INVALID_CHARS.test(piece)) return { error: 'invalid character in attribute value' };
      if (close === -1) { this.parts.push(piece); return this.pause(phase, name, attrs, attrName, quote, sawSpace); }
      const raw = this.parts.length ? this.taken(piece, 0, piece.length) : piece;
      const value = decodeEntities(raw);
      if (value === null) return { error: 'undefined entity in attribute value' };
      if (Object.hasOwn(attrs, attrName)) return { error: `duplicate attribute ${attrName}` };
      attrs[attrName] = value;
      phase = Phase.Gap;
      sawSpace = false;
      i = close + 1;
    }
  }

  private pause(phase: Phase, name: string, attrs: Attrs, attrName: string, quote: string, sawSpace: boolean): 'more' {
    this.phase = phase; this.name = name; this.attrs = attrs; this.attrName = attrName; this.quote = quote; this.sawSpace = sawSpace;
    return 'more';
  }

  /** Keeps buf[from..] for the next read. */
  private hold(buf: string, from: number): void {
    if (from < buf.length) this.parts.push(buf.slice(from));
  }

  /** The held characters and buf[from..to], and nothing held any more. */
  private taken(buf: string, from: number, to: number): string {
    if (this.parts.length === 0) return buf.slice(from, to);
    const s = this.parts.join('') + buf.slice(from, to);
    this.parts = [];
    return s;
  }
}

export class XmlStreamParser {
  private readonly decoder = new StringDecoder('utf8');
  private buf = '';
  /** Characters consumed before buf[0], for the stanza size limit. */
  private consumed = 0;
  private stanzaStart = -1;
  private rootName: string | null = null;
  private rootNs = '';
  private rootPrefixes = new Map<string, string>();
  private readonly stack: Element[] = [];
  private readonly rawNames: string[] = [];
  private readonly scopes: (Map<string, string> | null)[] = [];
  /** The default namespace in scope inside each open element (not its own namespace when it is prefixed). */
  private readonly defaults: string[] = [];
  private sawDeclaration = false;
  private failed = false;
  private ended = false;
  /** The previous chunk's last two bytes (-1 when none): a literal U+FFFD may straddle two reads. */
  private tail = [-1, -1];
  private readonly tagReader = new StartTagReader();
  /** Where a start tag that is still arriving began (counted like consumed), or -1. */
  private tagStart = -1;

  constructor(
    private readonly events: XmlStreamEvents,
    private readonly limits: XmlStreamLimits = DEFAULT_LIMITS,
  ) {}

  get depth(): number {
    return this.stack.length;
  }

  /** Characters held in the buffer for the next read (markup not yet complete). */
  get held(): number {
    return this.buf.length;
  }

  write(chunk: Buffer | string): void {
    if (this.failed || this.ended) return;
    let text: string;
    if (typeof chunk === 'string') text = chunk;
    else {
      text = this.decoder.write(chunk);
      if (text.indexOf('\uFFFD') !== -1 && !this.onlyLiteralReplacementChars(chunk, text)) {
        return this.fail('not-well-formed', 'invalid UTF-8');
      }
      const n = chunk.length;
      this.tail = [n >= 2 ? chunk[n - 2]! : this.tail[1]!, n >= 1 ? chunk[n - 1]! : -1];
    }
    this.buf = this.buf.length === 0 ? text : this.buf + text;
    this.parse();
  }

  /**
   * Whether every U+FFFD the decoder gave stands for one the peer really sent (EF BF BD, counted over
   * the previous read's last two bytes too), rather than for bytes that are not UTF-8: one literal
   * U+FFFD must not let an invalid byte in the same read through.
   */
  private onlyLiteralReplacementChars(chunk: Buffer, text: string): boolean {
    let decoded = 0;
    for (let i = text.indexOf('\uFFFD'); i !== -1; i = text.indexOf('\uFFFD', i + 1)) decoded++;
    const prev = this.tail.filter((b) => b >= 0);
    const probe = prev.length ? Buffer.concat([Buffer.from(prev), chunk]) : chunk;
    let literal = 0;
    for (let i = probe.indexOf(REPLACEMENT_UTF8); i !== -1; i = probe.indexOf(REPLACEMENT_UTF8, i + 3)) literal++;
    return literal >= decoded;
  }

  private fail(condition: string, text: string): void {
    if (this.failed) return;
    this.failed = true;
    this.buf = '';
    this.events.error(condition, text);
  }

  private parse(): void {
    const buf = this.buf;
    const len = buf.length;
    let pos = 0;
    if (this.tagStart >= 0) pos = this.finishTag(this.tagReader.feed(buf, 0), len);
    while (pos < len && !this.failed && !this.ended) {
      if (buf.charCodeAt(pos) !== 60 /* < */) {
        const lt = buf.indexOf('<', pos);
        if (lt === -1) {
          // Text is consumed once its end is seen (entities may be split), but junk between stanzas fails now.
          if (this.stack.length === 0) {
            if (!WS_ONLY.test(buf.slice(pos))) this.fail('not-well-formed', 'character data outside a stanza');
            // White space between stanzas (keep-alives) is done with: held, it would add up to the limit.
            else pos = len;
          } else {
            // Inside a stanza, text is taken as it comes, up to an entity reference still open at the
            // end: held, a body sent a byte per read would be copied and scanned again at every read.
            const amp = buf.lastIndexOf('&');
            const cut = amp >= pos && buf.indexOf(';', amp) === -1 ? amp : len;
            if (cut > pos) {
              if (this.overLimit(cut)) break;
              this.text(buf.slice(pos, cut));
              pos = cut;
            }
            if (!this.failed && len - pos > MAX_REFERENCE) this.fail('not-well-formed', 'undefined entity');
          }
          break;
        }
        if (this.overLimit(lt)) break;
        this.text(buf.slice(pos, lt));
        pos = lt;
        continue;
      }
      if (pos + 1 >= len) break;
      const c = buf.charCodeAt(pos + 1);
      if (c === 47 /* / */) {
        const gt = buf.indexOf('>', pos);
        if (gt === -1) break;
        this.endTag(buf.slice(pos + 2, gt).trim(), gt + 1);
        pos = gt + 1;
      } else if (c === 33 /* ! */) {
        if (buf.startsWith('<![CDATA[', pos)) {
          const end = buf.indexOf(']]>', pos + 9);
          if (end === -1) break;
          if (this.stack.length === 0) { this.fail('not-well-formed', 'character data outside a stanza'); break; }
          if (this.overLimit(end + 3)) break;
          const cdata = buf.slice(pos + 9, end);
          if (INVALID_CHARS.test(cdata)) { this.fail('not-well-formed', 'invalid character'); break; }
          this.appendText(cdata);
          pos = end + 3;
        } else if ((len - pos < 9 && '<![CDATA['.startsWith(buf.slice(pos))) || (len - pos < 4 && '<!--'.startsWith(buf.slice(pos)))) {
          // Not known yet whether this is CDATA, a comment or a DTD: the next read tells.
          break;
        } else {
          this.fail('restricted-xml', buf.startsWith('<!--', pos) ? 'comments are not allowed' : 'DTDs are not allowed');
        }
      } else if (c === 63 /* ? */) {
        const end = buf.indexOf('?>', pos);
        if (this.rootName === null && !this.sawDeclaration && buf.startsWith('<?xml', pos)) {
          if (end === -1) break;
          // Held to the stanza size in one read as it is when it trickles in (unterminated markup).
          if (end + 2 - pos > this.limits.maxStanzaSize) { this.fail('policy-violation', 'XML declaration too large'); break; }
          const decl = buf.slice(pos, end);
          const enc = /encoding\s*=\s*["']([^"']*)["']/.exec(decl);
          if (enc && enc[1]!.toLowerCase() !== 'utf-8') { this.fail('unsupported-encoding', 'only UTF-8 is supported'); break; }
          this.sawDeclaration = true;
          pos = end + 2;
        } else if (len - pos < 5 && '<?xml'.startsWith(buf.slice(pos)) && this.rootName === null) {
          break;
        } else {
          this.fail('restricted-xml', 'processing instructions are not allowed');
        }
      } else {
        this.tagStart = this.consumed + pos;
        pos = this.finishTag(this.tagReader.begin(buf, pos), len);
      }
    }
    if (this.failed || this.ended) return;
    this.consumed += pos;
    this.buf = pos === 0 ? buf : buf.slice(pos);
    if (this.stanzaStart >= 0 && this.consumed + this.buf.length - this.stanzaStart > this.limits.maxStanzaSize) {
      this.fail('policy-violation', `stanza larger than ${this.limits.maxStanzaSize} characters`);
    } else if (this.stanzaStart < 0 && this.consumed + this.buf.length - (this.tagStart >= 0 ? this.tagStart : this.consumed) > this.limits.maxStanzaSize) {
      this.fail('policy-violation', 'unterminated markup');
    }
  }

  /**
   * Fails with policy-violation when the open stanza, read up to end (an index into buf), is larger
   * than the limit. Checked as each token is read, so a stanza that arrives whole in one read is held
   * to the same limit as one that trickles in.
   */
  private overLimit(end: number): boolean {
    if (this.stanzaStart < 0 || this.consumed + end - this.stanzaStart <= this.limits.maxStanzaSize) return false;
    this.fail('policy-violation', `stanza larger than ${this.limits.maxStanzaSize} characters`);
    return true;
  }

  /**
   * Acts on what the tag reader made of this read: opens the element, or keeps the tag's beginning in
   * the reader (every character of the read is then taken), or fails. Returns where parsing goes on.
   */
  private finishTag(tag: StartTag | 'more' | { error: string }, len: number): number {
    if (tag === 'more') return len;
    const tagStart = this.tagStart;
    this.tagStart = -1;
    if ('error' in tag) { this.fail('not-well-formed', tag.error); return len; }
    this.open(tag.name, tag.attrs, tag.selfClosing, tagStart, tag.end);
    if (!this.failed) this.overLimit(tag.end);
    return tag.end;
  }

  /** tagStart: where the tag began, counted like consumed; tagEnd: the index in buf just after it. */
  private open(name: string, attrs: Attrs, selfClosing: boolean, tagStart: number, tagEnd: number): void {
    if (this.rootName === null) {
      // The stream header is no stanza, but it is held to the same size.
      if (this.consumed + tagEnd - tagStart > this.limits.maxStanzaSize) { this.fail('policy-violation', 'stream header too large'); return; }
      this.rootName = name;
      this.rootNs = attrs.xmlns ?? '';
      for (const k in attrs) if (k.startsWith('xmlns:')) this.rootPrefixes.set(k.slice(6), attrs[k]!);
      this.events.streamStart(name, attrs);
      if (selfClosing) this.finish();
      return;
    }
    if (this.stack.length >= this.limits.maxDepth) {
      this.fail('policy-violation', `elements nested deeper than ${this.limits.maxDepth}`);
      return;
    }
    let scope: Map<string, string> | null = null;
    for (const k in attrs) {
      if (k.charCodeAt(0) === 120 && k.startsWith('xmlns:')) (scope ??= new Map()).set(k.slice(6), attrs[k]!);
    }
    const parent = this.stack.length ? this.stack[this.stack.length - 1]! : null;
    const parentNs = parent ? parent.ns : this.rootNs;
    const inheritedDefault = this.defaults.length ? this.defaults[this.defaults.length - 1]! : this.rootNs;
    // An xmlns attribute declares the default namespace for the element's descendants, prefixed or not.
    const defaultNs = attrs.xmlns ?? inheritedDefault;
    let local = name;
    let ns: string;
    const colon = name.indexOf(':');
    if (colon !== -1) {
      const prefix = name.slice(0, colon);
      local = name.slice(colon + 1);
      // A qualified name has one colon between two non-empty parts (Namespaces in XML §4).
      if (local.includes(':') || !NAME.test(local)) { this.fail('not-well-formed', `invalid qualified name ${name}`); return; }
      const bound = scope?.get(prefix) ?? this.lookupPrefix(prefix);
      if (bound === undefined) { this.fail('bad-namespace-prefix', `unbound prefix ${prefix}`); return; }
      ns = bound;
    } else {
      ns = defaultNs;
    }
    // Prefixes are resolved here once, and every element whose namespace is not its parent's says so
    // with xmlns: serialised, it then means the same (an unprefixed child of a prefixed element is in
    // the default namespace, not in its parent's).
    if (ns !== parentNs) attrs.xmlns = ns;
    const element = new Element(local, attrs, [], ns);
    if (parent) parent.children.push(element);
    else this.stanzaStart = tagStart;
    if (selfClosing) {
      if (!parent) this.emitStanza(element, tagEnd);
      return;
    }
    this.stack.push(element);
    this.defaults.push(defaultNs);
    this.rawNames.push(name);
    this.scopes.push(scope);
  }

  private lookupPrefix(prefix: string): string | undefined {
    if (prefix === 'xml') return NS.xml;
    for (let i = this.scopes.length - 1; i >= 0; i--) {
      const v = this.scopes[i]?.get(prefix);
      if (v !== undefined) return v;
    }
    return this.rootPrefixes.get(prefix);
  }

  /** end: the index in buf just after the end tag. */
  private endTag(name: string, end: number): void {
    if (this.stack.length === 0) {
      if (name === this.rootName) this.finish();
      else this.fail('not-well-formed', `unexpected </${name}>`);
      return;
    }
    const top = this.stack.pop()!;
    const raw = this.rawNames.pop();
    this.scopes.pop();
    this.defaults.pop();
    if (raw !== name) { this.fail('not-well-formed', `</${name}> does not close <${raw}>`); return; }
    if (this.stack.length === 0) this.emitStanza(top, end);
  }

  /** end: the index in buf just after the stanza's last character. */
  private emitStanza(stanza: Element, end: number): void {
    if (this.overLimit(end)) return;
    this.stanzaStart = -1;
    this.events.stanza(stanza);
  }

  private finish(): void {
    this.ended = true;
    this.buf = '';
    this.events.streamEnd();
  }

  private text(raw: string): void {
    if (this.stack.length === 0) {
      // Between stanzas only white space (keep-alives) may appear.
      if (!WS_ONLY.test(raw)) this.fail('not-well-formed', 'character data outside a stanza');
      return;
    }
    if (INVALID_CHARS.test(raw)) { this.fail('not-well-formed', 'invalid character'); return; }
    const value = decodeEntities(raw);
    if (value === null) { this.fail('not-well-formed', 'undefined entity'); return; }
    this.appendText(value);
  }

  private appendText(value: string): void {
    if (value.length === 0) return;
    const top = this.stack[this.stack.length - 1]!;
    const last = top.children.length - 1;
    if (last >= 0 && typeof top.children[last] === 'string') top.children[last] += value;
    else top.children.push(value);
  }
}

/** Namespace of the stream root element's prefix, for checks by the session. */
export function isStreamRoot(name: string, attrs: Attrs): boolean {
  const colon = name.indexOf(':');
  const local = colon === -1 ? name : name.slice(colon + 1);
  const ns = colon === -1 ? attrs.xmlns : attrs['xmlns:' + name.slice(0, colon)];
  return local === 'stream' && ns === NS.streams;
}

/** Parses one serialised stanza (one the server wrote itself: stored, or sent between nodes). */
export function parseStanzaString(xml: string, contentNs: string = NS.client): Element | null {
  let out: Element | null = null;
  const p = new XmlStreamParser({
    streamStart: () => {}, stanza: (el) => { out = el; }, streamEnd: () => {}, error: () => {},
  }, { maxStanzaSize: Number.MAX_SAFE_INTEGER, maxDepth: 1000 });
  p.write(`<s xmlns='${contentNs}'>`);
  p.write(xml);
  return out;
}
