import { expect } from 'chai';
import { saslprep } from '../protocol/saslprep.js';

describe('saslprep', () => {
  // RFC 4013 §3.
  it('maps SOFT HYPHEN to nothing', () => expect(saslprep('I\u00ADX')).to.equal('IX'));
  it('leaves plain ASCII alone', () => expect(saslprep('user')).to.equal('user'));
  it('preserves case', () => expect(saslprep('USER')).to.equal('USER'));
  it('applies NFKC to ª', () => expect(saslprep('\u00AA')).to.equal('a'));
  it('applies NFKC to ROMAN NUMERAL NINE', () => expect(saslprep('\u2168')).to.equal('IX'));
  it('rejects ASCII control characters', () => expect(() => saslprep('\u0007')).to.throw(/prohibited/));
  it('rejects a string mixing RandALCat with a trailing digit', () =>
    expect(() => saslprep('\u0627\u0031')).to.throw(/bidirectional/));

  it('maps non-ASCII spaces to SPACE', () => expect(saslprep('a\u00A0b\u3000c')).to.equal('a b c'));
  it('keeps ASCII spaces', () => expect(saslprep('correct horse')).to.equal('correct horse'));
  it('accepts the empty string', () => expect(saslprep('')).to.equal(''));
  it('accepts a right-to-left string that starts and ends with RandALCat', () =>
    expect(saslprep('\u0627\u0031\u0628')).to.equal('\u0627\u0031\u0628'));
  it('rejects mixed right-to-left and left-to-right letters', () =>
    expect(() => saslprep('\u0627a\u0628')).to.throw(/bidirectional/));
  it('accepts non-ASCII letters', () => expect(saslprep('Ünïcödé')).to.equal('Ünïcödé'));

  for (const [name, s] of [
    ['DEL', 'a\u007F'],
    ['C1 control', 'a\u0085'],
    ['private use', 'a\uE000'],
    ['supplementary private use', 'a\u{F0000}'],
    ['non-character', 'a\uFDD0'],
    ['plane non-character', 'a\u{1FFFE}'],
    ['lone surrogate', 'a\uD800'],
    ['replacement character', 'a\uFFFD'],
    ['ideographic description', 'a\u2FF0'],
    ['left-to-right mark', 'a\u200E'],
    ['tag', 'a\u{E0041}'],
  ]) {
    it(`rejects ${name}`, () => expect(() => saslprep(s)).to.throw(Error));
  }
});
