import { expect } from 'chai';
import { Element } from '../protocol/xml.js';
import { PresenceBuffer, isHoldablePresence } from '../src/modules/csi.js';

const presence = (from: string, show?: string) => {
  const p = new Element('presence', { from });
  if (show) p.c('show').t(show);
  return p.toString();
};

describe('csi: presence buffer', () => {
  it('keeps the latest presence per sender, in the order of the latest updates', () => {
    const b = new PresenceBuffer();
    b.hold('a@x/1', presence('a@x/1', 'away'));
    b.hold('b@x/1', presence('b@x/1'));
    b.hold('a@x/1', presence('a@x/1', 'dnd'));
    expect(b.drain()).to.deep.equal([presence('b@x/1'), presence('a@x/1', 'dnd')]);
    expect(b.size).to.equal(0);
  });
  it('holds only availability presence', () => {
    expect(isHoldablePresence('presence', undefined)).to.equal(true);
    expect(isHoldablePresence('presence', 'unavailable')).to.equal(true);
    expect(isHoldablePresence('presence', 'subscribe')).to.equal(false);
    expect(isHoldablePresence('message', undefined)).to.equal(false);
  });
});
