import { expect } from 'chai';
import { Jid, JidError, parseJid, tryParseJid } from '../protocol/jid.js';

function parts(s: string): [string, string, string] {
  const j = parseJid(s);
  return [j.local, j.domain, j.resource];
}

describe('parseJid', () => {
  describe('RFC 7622 §3.5 examples of valid JIDs', () => {
    const cases: [string, [string, string, string]][] = [
      ['juliet@example.com', ['juliet', 'example.com', '']],
      ['juliet@example.com/foo', ['juliet', 'example.com', 'foo']],
      ['juliet@example.com/foo bar', ['juliet', 'example.com', 'foo bar']],
      ['juliet@example.com/foo@bar', ['juliet', 'example.com', 'foo@bar']],
      ['foo\\20bar@example.com', ['foo\\20bar', 'example.com', '']],
      ['fussball@example.com', ['fussball', 'example.com', '']],
      ['fußball@example.com', ['fußball', 'example.com', '']],
      ['π@example.com', ['π', 'example.com', '']],
      ['Σ@example.com/foo', ['σ', 'example.com', 'foo']],
      ['σ@example.com/foo', ['σ', 'example.com', 'foo']],
      ['ς@example.com/foo', ['ς', 'example.com', 'foo']],
      ['king@example.com/♚', ['king', 'example.com', '♚']],
      ['example.com', ['', 'example.com', '']],
      ['example.com/foobar', ['', 'example.com', 'foobar']],
      ['a.example.com/b@example.net', ['', 'a.example.com', 'b@example.net']],
    ];
    for (const [input, expected] of cases) {
      it(input, () => expect(parts(input)).to.deep.equal(expected));
    }
  });

  describe('RFC 7622 §3.5 examples of invalid JIDs', () => {
    for (const input of ['"juliet"@example.com', 'foo bar@example.com', '@example.com/', 'juliet@', '/foobar']) {
      it(JSON.stringify(input), () => expect(() => parseJid(input)).to.throw(JidError));
    }
  });

  it('maps compatibility characters in the localpart as nodeprep does', () => {
    // PRECIS refuses U+2163 outright; nodeprep (and this parser) map it to "iv".
    expect(parseJid('henry\u2163@example.com').local).to.equal('henryiv');
  });

  it('splits the resource at the first slash', () => {
    expect(parts('a@b.example/c/d@e')).to.deep.equal(['a', 'b.example', 'c/d@e']);
  });

  it('requires non-empty parts around separators', () => {
    for (const s of ['', '@example.com', 'a@', 'example.com/', 'a@example.com/', '/r', 'a@/r']) {
      expect(tryParseJid(s), s).to.equal(null);
    }
  });

  it('rejects forbidden localpart characters', () => {
    for (const c of ['"', '&', "'", ':', '<', '>', ' ', '\t', '\u0000', '\u00A0', '\u200B']) {
      expect(tryParseJid(`a${c}b@example.com`), JSON.stringify(c)).to.equal(null);
    }
  });

  it('case-folds the localpart and the domain but not the resource', () => {
    const j = parseJid('Juliet@Example.COM/Balcony');
    expect(j.toString()).to.equal('juliet@example.com/Balcony');
    expect(parseJid('ÄÖÜ@EXAMPLE.com').local).to.equal('äöü');
  });

  it('applies compatibility normalization to the localpart', () => {
    expect(parseJid('ｊｕｌｉｅｔ@example.com').local).to.equal('juliet');
    // Fullwidth '@' becomes a real one after normalization and is then refused.
    expect(tryParseJid('a\uFF20b@example.com')).to.equal(null);
  });

  it('applies NFC to the resource', () => {
    expect(parseJid('a@example.com/e\u0301').resource).to.equal('\u00E9');
    expect(tryParseJid('a@example.com/x\u0001')).to.equal(null);
  });

  it('enforces the 1023-byte limit per part', () => {
    const ok = 'a'.repeat(1023);
    expect(parseJid(`${ok}@example.com/${ok}`).local).to.have.length(1023);
    expect(tryParseJid(`${'a'.repeat(1024)}@example.com`)).to.equal(null);
    expect(tryParseJid(`a@example.com/${'r'.repeat(1024)}`)).to.equal(null);
    // Multi-byte characters count in UTF-8 bytes: 341 × 3 = 1023, 342 × 3 = 1026.
    expect(parseJid(`a@example.com/${'☃'.repeat(341)}`).resource).to.have.length(341);
    expect(tryParseJid(`a@example.com/${'☃'.repeat(342)}`)).to.equal(null);
    expect(tryParseJid(`${'é'.repeat(512)}@example.com`)).to.equal(null);
    const longDomain = Array.from({ length: 16 }, () => 'a'.repeat(63)).join('.');
    expect(longDomain.length).to.equal(1023);
    expect(parseJid(longDomain).domain).to.equal(longDomain);
    expect(tryParseJid(`${longDomain}a`)).to.equal(null);
  });

  describe('domainpart', () => {
    it('strips one trailing dot', () => {
      expect(parseJid('a@example.com.').domain).to.equal('example.com');
      expect(tryParseJid('a@example.com..')).to.equal(null);
      expect(tryParseJid('.')).to.equal(null);
    });

    it('checks labels', () => {
      for (const bad of ['a..b', '.a', '-a.example', 'a-.example', 'a_b.example', 'a b', `${'a'.repeat(64)}.example`]) {
        expect(tryParseJid(bad), bad).to.equal(null);
      }
      expect(parseJid('a-b.example').domain).to.equal('a-b.example');
      expect(parseJid(`${'a'.repeat(63)}.example`).domain).to.have.length(71);
    });

    it('accepts IP literals', () => {
      expect(parseJid('a@192.0.2.1/r').domain).to.equal('192.0.2.1');
      for (const ip of ['::1', '2001:db8::1', '2001:DB8:0:0:0:0:0:1', '::ffff:192.0.2.1', '::']) {
        expect(parseJid(`a@[${ip}]`).domain, ip).to.equal(`[${ip.toLowerCase()}]`);
      }
      for (const ip of ['[::1', '[1:2:3]', '[1::2::3]', '[12345::]', '[::1.2.3.4.5]', '[1.2.3.4::]', '[]']) {
        expect(tryParseJid(`a@${ip}`), ip).to.equal(null);
      }
    });

    it('accepts internationalized names', () => {
      expect(parseJid('a@Bücher.Example').domain).to.equal('bücher.example');
      expect(parseJid('a@例え。テスト').domain).to.equal('例え.テスト');
      // The A-label of this is longer than 63 bytes.
      expect(tryParseJid(`a@${'ü'.repeat(60)}.example`)).to.equal(null);
    });
  });

  it('throws JidError with a reason', () => {
    try {
      parseJid('@x');
      expect.fail('should have thrown');
    } catch (err) {
      expect(err).to.be.instanceOf(JidError);
      expect((err as JidError).reason).to.be.a('string').and.not.equal('');
    }
  });
});

describe('Jid', () => {
  it('formats and caches its string forms', () => {
    const j = parseJid('romeo@montague.example/orchard');
    expect(j.toString()).to.equal('romeo@montague.example/orchard');
    expect(j.bareString()).to.equal('romeo@montague.example');
    expect(`${j}`).to.equal(j.toString());
    expect(parseJid('montague.example').toString()).to.equal('montague.example');
  });

  it('bare, isBare, withResource, equals', () => {
    const full = parseJid('romeo@montague.example/orchard');
    const bare = full.bare();
    expect(full.isBare()).to.equal(false);
    expect(bare.isBare()).to.equal(true);
    expect(bare.bare()).to.equal(bare);
    expect(bare.toString()).to.equal('romeo@montague.example');
    expect(bare.withResource('orchard').equals(full)).to.equal(true);
    expect(full.withResource('').equals(bare)).to.equal(true);
    expect(full.equals(bare)).to.equal(false);
    expect(full.equals(null)).to.equal(false);
    expect(new Jid('romeo', 'montague.example', 'orchard').equals(full)).to.equal(true);
    expect(() => bare.withResource('a\u0000')).to.throw(JidError);
  });

  it('round-trips through its string form', () => {
    for (const s of ['Juliet@Example.com/Balcony', 'ΣΑΣ@例え.テスト/♚', 'a@[::1]/x']) {
      const j = parseJid(s);
      expect(parseJid(j.toString()).equals(j), s).to.equal(true);
    }
  });
});

describe('parseJid: preparation is idempotent (found by fuzzing)', () => {
  // U+0130 lower-cases to i + U+0307, which NFKC orders after U+05C2; without a second normalisation the
  // domain of a parsed JID parsed again gave another string.
  for (const input of ['\u0130\u05C2', 'user@\u0130\u05C2.example', '\u0130\u05C2@example.com']) {
    it(JSON.stringify(input), () => {
      const once = parseJid(input);
      const twice = parseJid(once.toString());
      expect(twice.toString()).to.equal(once.toString());
      expect(twice.equals(once)).to.equal(true);
    });
  }
});

describe('parseJid: addresses parsed lately are kept', () => {
  it('gives the same object for the same text, and refuses invalid text every time', () => {
    const a = parseJid('Keep@Example.com/res');
    expect(parseJid('Keep@Example.com/res')).to.equal(a);
    expect(a.toString()).to.equal('keep@example.com/res');
    for (let i = 0; i < 2; i++) expect(() => parseJid('@example.com')).to.throw(JidError);
    expect(tryParseJid('a@b/')).to.equal(null);
  });

  it('does not keep a long address (bounded memory), and parses it the same', () => {
    const long = `u@example.com/${'r'.repeat(500)}`;
    const once = parseJid(long);
    expect(parseJid(long)).to.not.equal(once);
    expect(parseJid(long).equals(once)).to.equal(true);
  });

  it('keeps an address in use while many others pass, and lets unused ones go (bounded)', () => {
    const used = parseJid('used@example.com');
    const unused = parseJid('unused@example.com');
    for (let i = 0; i < 20_000; i++) {
      parseJid(`other${i}@example.com/r`);
      if (i % 1_000 === 0) expect(parseJid('used@example.com')).to.equal(used);
    }
    expect(parseJid('used@example.com')).to.equal(used);
    const again = parseJid('unused@example.com');
    expect(again).to.not.equal(unused);
    expect(again.equals(unused)).to.equal(true);
  });
});
