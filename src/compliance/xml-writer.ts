// Escaping for the compliance XML files. Every value is captured user input (bodies, nicks, file names),
// so it is first cut to what XML 1.0 may hold, then escaped; a file must always parse and validate.

/**
 * What XML 1.0 cannot carry: C0 controls other than tab, newline and carriage return, U+FFFE and U+FFFF,
 * and UTF-16 surrogates without their pair (matched per code unit, hence no `u` flag).
 */
const NOT_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const NOT_XML_TEST = new RegExp(NOT_XML.source);

/** The string without the characters XML 1.0 does not allow (they are dropped). */
export function xmlChars(s: string): string {
  return NOT_XML_TEST.test(s) ? s.replace(NOT_XML, '') : s;
}

// Tab, newline and carriage return are written as references: a parser normalises them to spaces in an
// attribute (and a carriage return to a newline in text), and a multi-line post must come back whole.
const ATTR = /[&<>"\t\n\r]/g;
const ATTR_TEST = /[&<>"\t\n\r]/;
const TEXT = /[&<>\r]/g;
const TEXT_TEST = /[&<>\r]/;
const ENT: Record<string, string> = {
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\t': '&#9;', '\n': '&#10;', '\r': '&#13;',
};

/** An attribute value for double quotes. */
export function xmlAttr(s: string): string {
  const c = xmlChars(s);
  return ATTR_TEST.test(c) ? c.replace(ATTR, (ch) => ENT[ch]!) : c;
}

/** Element text. */
export function xmlText(s: string): string {
  const c = xmlChars(s);
  return TEXT_TEST.test(c) ? c.replace(TEXT, (ch) => ENT[ch]!) : c;
}

/** Attributes in the given order, each ` name="value"`; undefined values are left out. */
export function attrs(list: [string, string | undefined][]): string {
  let s = '';
  for (const [name, value] of list) if (value !== undefined) s += ` ${name}="${xmlAttr(value)}"`;
  return s;
}

export const XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>';
