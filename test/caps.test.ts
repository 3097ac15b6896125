import { expect } from 'chai';
import { capsString, capsVer, capsVerOfQuery, capsElement } from '../protocol/caps.js';
import { parseForm } from '../protocol/forms.js';
import { xml } from './xml.js';


const FEATURES = [
  'http://jabber.org/protocol/muc',
  'http://jabber.org/protocol/disco#items',
  'http://jabber.org/protocol/caps',
  'http://jabber.org/protocol/disco#info',
];

describe('entity capabilities verification string (XEP-0115 §5.1)', () => {
  it('§5.2 simple generation example', () => {
    const ids = [{ category: 'client', type: 'pc', name: 'Exodus 0.9.1' }];
    expect(capsString(ids, FEATURES)).to.equal(
      'client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<' +
      'http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<',
    );
    expect(capsVer(ids, FEATURES)).to.equal('QgayPKawpkPSDYmwT/WM94uAlu0=');
  });

  const COMPLEX = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
    <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
    <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
    <feature var='http://jabber.org/protocol/caps'/>
    <feature var='http://jabber.org/protocol/disco#info'/>
    <feature var='http://jabber.org/protocol/disco#items'/>
    <feature var='http://jabber.org/protocol/muc'/>
    <x xmlns='jabber:x:data' type='result'>
      <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
      <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
      <field var='os'><value>Mac</value></field>
      <field var='os_version'><value>10.5.1</value></field>
      <field var='software'><value>Psi</value></field>
      <field var='software_version'><value>0.11</value></field>
    </x>
  </query>`;

  it('§5.3 complex generation example (languages, XEP-0128 form)', () => {
    const query = xml(COMPLEX);
    const ids = [
      { category: 'client', type: 'pc', lang: 'en', name: 'Psi 0.11' },
      { category: 'client', type: 'pc', lang: 'el', name: 'Ψ 0.11' },
    ];
    const form = parseForm(query.getChild('x', 'jabber:x:data')!);
    expect(capsString(ids, FEATURES, [form])).to.equal(
      'client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<' +
      'http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<' +
      'ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<',
    );
    expect(capsVer(ids, FEATURES, [form])).to.equal('q07IKJEyjvHSyhy//CH0CxmKi8w=');
    expect(capsVerOfQuery(query)).to.equal('q07IKJEyjvHSyhy//CH0CxmKi8w=');
  });

  it('leaves out forms without a hidden FORM_TYPE (§5.4)', () => {
    const ids = [{ category: 'client', type: 'pc', name: 'Exodus 0.9.1' }];
    const untyped = parseForm(xml("<x xmlns='jabber:x:data' type='result'><field var='os'><value>Mac</value></field></x>"));
    expect(capsVer(ids, FEATURES, [untyped])).to.equal('QgayPKawpkPSDYmwT/WM94uAlu0=');
  });

  it('sorts by octets, not UTF-16 code units', () => {
    // U+1F426 (a surrogate pair, D83D...) sorts before U+FF21 in UTF-16 units but after it in UTF-8 bytes (F0 > EF).
    expect(capsString([], ['\u{1F426}', '\uFF21'])).to.equal('\uFF21<\u{1F426}<');
  });

  it('builds the <c/> element', () => {
    expect(capsElement('https://perch.example/caps', 'abc=').toString()).to.equal(
      "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://perch.example/caps' ver='abc='/>",
    );
  });
});
