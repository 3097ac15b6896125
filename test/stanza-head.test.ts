import { expect } from 'chai';
import { readStanzaHead } from '../protocol/stanza-head.js';
import { parseStanzaString } from '../protocol/xml-stream.js';
import { Element } from '../protocol/xml.js';

describe('stanza head: the start tag of a serialised stanza', () => {
  it('reads the name and attributes as the parser does, entities decoded', () => {
    const el = new Element('message', { to: "r@x/it's <me> & \"you\"", from: 'room@muc.x/n', type: 'groupchat' });
    el.c('body').t('hi');
    const xml = el.toString();
    const head = readStanzaHead(xml)!;
    expect(head.name).to.equal('message');
    expect(head.attrs).to.deep.equal(parseStanzaString(xml)!.attrs);
    expect(head.attrs.to).to.equal("r@x/it's <me> & \"you\"");
  });
  it('takes both quote styles, white space around =, self-closing tags and character references', () => {
    expect(readStanzaHead(`<presence from = "a@x/1" \n type='unavailable'/>`)).to.deep.equal(
      { name: 'presence', attrs: { from: 'a@x/1', type: 'unavailable' } });
    expect(readStanzaHead(`<iq id='&#x41;&#66;'>`)!.attrs.id).to.equal('AB');
  });
  it('leaves to the parser what it cannot read exactly', () => {
    for (const bad of [
      ' <message/>', '<client:message xmlns:client="jabber:client"/>', "<message to='a' to='b'/>",
      "<message to='a&nbsp;'/>", "<message to='a<'/>", "<message to='a'", "<message to=a/>", "<message to='a'from='b'/>",
    ]) expect(readStanzaHead(bad), bad).to.equal(null);
  });
});
