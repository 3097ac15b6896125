// SASLprep (RFC 4013), the stringprep profile (RFC 3454) for user names and passwords.
//
// Normalization uses the runtime's Unicode version rather than Unicode 3.2, and unassigned code
// points (table A.1) are let through, as RFC 4013 permits for queries.

/** Table C.1.2: non-ASCII space characters, mapped to U+0020. */
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g;

/** Table B.1: characters commonly mapped to nothing. */
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;

/**
 * Tables C.1.2, C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7, C.8 and C.9. Lone surrogates (C.5) appear as
 * \p{Cs}; the non-characters of the supplementary planes are the last two code points of each plane.
 */
const PROHIBITED = new RegExp(
  '[' +
    '\\u00A0\\u1680\\u2000-\\u200B\\u202F\\u205F\\u3000' + // C.1.2
    '\\u0000-\\u001F\\u007F' + // C.2.1
    '\\u0080-\\u009F\\u06DD\\u070F\\u180E\\u200C\\u200D\\u2028\\u2029\\u2060-\\u2063\\u206A-\\u206F' +
    '\\uFEFF\\uFFF9-\\uFFFC\\u{1D173}-\\u{1D17A}' + // C.2.2
    '\\uE000-\\uF8FF\\u{F0000}-\\u{FFFFD}\\u{100000}-\\u{10FFFD}' + // C.3
    '\\uFDD0-\\uFDEF\\uFFFE\\uFFFF' + // C.4 (plane 0)
    '\\p{Cs}' + // C.5
    '\\uFFF9-\\uFFFD' + // C.6
    '\\u2FF0-\\u2FFB' + // C.7
    '\\u0340\\u0341\\u200E\\u200F\\u202A-\\u202E' + // C.8
    '\\u{E0001}\\u{E0020}-\\u{E007F}' + // C.9
  ']',
  'u',
);

/** C.4 in planes 1-16: U+nFFFE and U+nFFFF. */
function isPlaneNonCharacter(cp: number): boolean {
  return cp > 0xffff && (cp & 0xfffe) === 0xfffe;
}

/** Table D.1: characters with bidirectional property R or AL. */
const RAND_AL = new RegExp(
  '[\\u05BE\\u05C0\\u05C3\\u05D0-\\u05EA\\u05F0-\\u05F4\\u061B\\u061F\\u0621-\\u063A\\u0640-\\u064A' +
    '\\u066D-\\u066F\\u0671-\\u06D5\\u06DD\\u06E5\\u06E6\\u06FA-\\u06FE\\u0700-\\u070D\\u0710' +
    '\\u0712-\\u072C\\u0780-\\u07A5\\u07B1\\u200F\\uFB1D\\uFB1F-\\uFB28\\uFB2A-\\uFB36\\uFB38-\\uFB3C' +
    '\\uFB3E\\uFB40\\uFB41\\uFB43\\uFB44\\uFB46-\\uFBB1\\uFBD3-\\uFD3D\\uFD50-\\uFD8F\\uFD92-\\uFDC7' +
    '\\uFDF0-\\uFDFC\\uFE70-\\uFE74\\uFE76-\\uFEFC]',
  'u',
);

/**
 * Table D.2 (bidirectional property L) is several hundred ranges; letters and spacing marks outside
 * D.1 are a close approximation, and this check only decides whether a string mixes directions.
 */
const L_CAT = /[\p{L}\p{Mc}]/u;

/** Characters that may need no work at all: printable ASCII. */
const PRINTABLE_ASCII = /^[\x20-\x7E]*$/;

export function saslprep(s: string): string {
  if (PRINTABLE_ASCII.test(s)) return s;

  const out = s.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '').normalize('NFKC');

  let hasRandAL = false;
  let hasL = false;
  for (const ch of out) {
    const cp = ch.codePointAt(0)!;
    if (PROHIBITED.test(ch) || isPlaneNonCharacter(cp)) {
      throw new Error(`saslprep: prohibited character U+${cp.toString(16).toUpperCase().padStart(4, '0')}`);
    }
    if (RAND_AL.test(ch)) hasRandAL = true;
    else if (L_CAT.test(ch)) hasL = true;
  }

  // RFC 3454 §6: a string with right-to-left characters must not contain left-to-right ones,
  // and must start and end with a right-to-left character.
  if (hasRandAL) {
    const chars = Array.from(out);
    if (hasL || !RAND_AL.test(chars[0]) || !RAND_AL.test(chars[chars.length - 1])) {
      throw new Error('saslprep: invalid bidirectional string');
    }
  }
  return out;
}
