// The element model every stanza is parsed into and built with: plain name, attributes, children.
// Namespaces are resolved once at parse time (`ns`), so look-ups never walk up a tree.

export type Attrs = Record<string, string>;
export type Node = Element | string;

export class Element {
  name: string;
  attrs: Attrs;
  children: Node[];
  /** Resolved namespace; set by the parser or inherited when appended to a parent. */
  ns: string;

  constructor(name: string, attrs: Attrs = {}, children: Node[] = [], ns?: string) {
    this.name = name;
    this.attrs = attrs;
    this.children = children;
    this.ns = ns ?? attrs.xmlns ?? '';
  }

  /** Appends a child element and returns it (for building). */
  c(name: string, attrs: Attrs = {}): Element {
    const child = new Element(name, attrs, [], attrs.xmlns ?? this.ns);
    this.children.push(child);
    return child;
  }

  /** Appends children (elements or text) and returns this. */
  append(...nodes: (Node | null | undefined | false)[]): this {
    for (const n of nodes) {
      if (n === null || n === undefined || n === false) continue;
      if (typeof n !== 'string' && !n.attrs.xmlns && !n.ns) n.ns = this.ns;
      this.children.push(n);
    }
    return this;
  }

  /** Appends a text child and returns this. */
  t(text: string): this {
    this.children.push(text);
    return this;
  }

  getChild(name: string, ns?: string): Element | undefined {
    for (const c of this.children) {
      if (typeof c !== 'string' && c.name === name && (ns === undefined || c.ns === ns)) return c;
    }
    return undefined;
  }

  getChildren(name: string, ns?: string): Element[] {
    const out: Element[] = [];
    for (const c of this.children) {
      if (typeof c !== 'string' && c.name === name && (ns === undefined || c.ns === ns)) out.push(c);
    }
    return out;
  }

  /** First child element in namespace ns, whatever its name. */
  getChildByNs(ns: string): Element | undefined {
    for (const c of this.children) if (typeof c !== 'string' && c.ns === ns) return c;
    return undefined;
  }

  elements(): Element[] {
    const out: Element[] = [];
    for (const c of this.children) if (typeof c !== 'string') out.push(c);
    return out;
  }

  text(): string {
    let s = '';
    for (const c of this.children) if (typeof c === 'string') s += c;
    return s;
  }

  getChildText(name: string, ns?: string): string | undefined {
    return this.getChild(name, ns)?.text();
  }

  is(name: string, ns?: string): boolean {
    return this.name === name && (ns === undefined || this.ns === ns);
  }

  clone(): Element {
    return new Element(
      this.name,
      { ...this.attrs },
      this.children.map((c) => (typeof c === 'string' ? c : c.clone())),
      this.ns,
    );
  }

  removeChildren(pred: (e: Element) => boolean): void {
    this.children = this.children.filter((c) => typeof c === 'string' || !pred(c));
  }

  toString(): string {
    return serialize(this);
  }
}

/** Shorthand builder: el('iq', {type:'result'}, child1, 'text'). */
export function el(name: string, attrs: Attrs = {}, ...children: (Node | null | undefined | false)[]): Element {
  const e = new Element(name, attrs);
  e.append(...children);
  return e;
}

const NEEDS_TEXT = /[&<>]/;
const NEEDS_ATTR = /[&<>"']/;
const ESC_TEXT = /[&<>]/g;
const ESC_ATTR = /[&<>"']/g;
const ENT: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

export function escapeText(s: string): string {
  return NEEDS_TEXT.test(s) ? s.replace(ESC_TEXT, (c) => ENT[c]!) : s;
}

export function escapeAttr(s: string): string {
  return NEEDS_ATTR.test(s) ? s.replace(ESC_ATTR, (c) => ENT[c]!) : s;
}

function write(e: Element, out: string[]): void {
  let s = '<' + e.name;
  const attrs = e.attrs;
  for (const k in attrs) {
    const v = attrs[k];
    if (v !== undefined) s += ' ' + k + "='" + escapeAttr(v) + "'";
  }
  if (e.children.length === 0) {
    out.push(s + '/>');
    return;
  }
  out.push(s + '>');
  for (const c of e.children) {
    if (typeof c === 'string') out.push(escapeText(c));
    else write(c, out);
  }
  out.push('</' + e.name + '>');
}

export function serialize(e: Element): string {
  const out: string[] = [];
  write(e, out);
  return out.join('');
}
