import { expect } from 'chai';
import { Element } from '../protocol/xml.js';
import { PresenceBuffer, isHoldablePresence } from '../src/modules/csi.js';

const presence = (from: string, show?: string) => {
  const p = new Element('presence', { from });
  if (show) p.c('show').t(show);
  return p;
};

describe('csi: presence buffer', () => {
  it('keeps the latest presence per sender, in the order of the latest updates', () => {
    const b = new PresenceBuffer();
    b.hold(presence('a@x/1', 'away'));
    b.hold(presence('b@x/1'));
    b.hold(presence('a@x/1', 'dnd'));
    const out = b.drain();
    expect(out.map((p) => p.attrs.from)).to.deep.equal(['b@x/1', 'a@x/1']);
    expect(out[1]!.getChildText('show')).to.equal('dnd');
    expect(b.size).to.equal(0);
  });
  it('holds a copy, unaffected by later changes to the element', () => {
    const b = new PresenceBuffer();
    const p = presence('a@x/1');
    p.attrs.to = 'r@x/1';
    b.hold(p);
    p.attrs.to = 'other@x/1';
    expect(b.drain()[0]!.attrs.to).to.equal('r@x/1');
  });
  it('holds only availability presence', () => {
    expect(isHoldablePresence(new Element('presence'))).to.equal(true);
    expect(isHoldablePresence(new Element('presence', { type: 'unavailable' }))).to.equal(true);
    expect(isHoldablePresence(new Element('presence', { type: 'subscribe' }))).to.equal(false);
    expect(isHoldablePresence(new Element('message'))).to.equal(false);
  });
});
