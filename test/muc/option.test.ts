// How a feature declares a room option (src/muc/option.ts).
import { expect } from 'chai';
import { StanzaError } from '../../protocol/errors.js';
import { bool, text, choice } from '../../src/muc/option.js';

describe('room options (src/muc/option.ts)', () => {
  it('bool reads 1/true/0/false, writes 1/0, and refuses anything else with not-acceptable', () => {
    const o = bool('moderated', 'muc#roomconfig_moderatedroom', 'Moderated', 1, false);
    const c: Record<string, unknown> = { moderated: o.initial() };
    expect(o.write(c)).to.deep.equal(['0']);
    o.read(c, ['true']);
    expect(c.moderated).to.equal(true);
    expect(o.write(c)).to.deep.equal(['1']);
    o.read(c, ['0']);
    expect(c.moderated).to.equal(false);
    expect(() => o.read(c, ['yes'])).to.throw(StanzaError).with.property('condition', 'not-acceptable');
  });

  it('text joins lines and enforces its length', () => {
    const o = text('description', 'muc#roomconfig_roomdesc', 'Description', 2, 5);
    const c: Record<string, unknown> = { description: o.initial() };
    o.read(c, ['ab', 'c']);
    expect(c.description).to.equal('ab\nc');
    expect(() => o.read(c, ['abcdef'])).to.throw(StanzaError);
  });

  it('choice offers its values and takes only those', () => {
    const o = choice('whois', 'muc#roomconfig_whois', 'Whois', 3, ['moderators', 'anyone'], 'moderators');
    expect(o.options!.map((x) => x.value)).to.deep.equal(['moderators', 'anyone']);
    const c: Record<string, unknown> = { whois: o.initial() };
    o.read(c, ['anyone']);
    expect(c.whois).to.equal('anyone');
    expect(() => o.read(c, ['everyone'])).to.throw(StanzaError);
  });
});
