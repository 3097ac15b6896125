import { expect } from 'chai';
import { XmlStreamParser, decodeEntities, type XmlStreamLimits } from '../protocol/xml-stream.js';
import { Element, el } from '../protocol/xml.js';

const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

function run(chunks: (string | Buffer)[], limits?: XmlStreamLimits) {
  const out = { starts: [] as string[], stanzas: [] as Element[], errors: [] as string[], ended: false };
  const p = new XmlStreamParser({
    streamStart: (name) => out.starts.push(name),
    stanza: (s) => out.stanzas.push(s),
    streamEnd: () => { out.ended = true; },
    error: (cond) => out.errors.push(cond),
  }, limits);
  for (const c of chunks) p.write(c);
  return out;
}

describe('XML stream parser', () => {
  it('parses the stream header and stanzas with namespaces resolved', () => {
    const r = run([HEADER, "<message to='a@b' type='chat'><body>hi &amp; bye</body><x xmlns='urn:x'><y/></x></message>"]);
    expect(r.errors).to.deep.equal([]);
    expect(r.starts).to.deep.equal(['stream:stream']);
    const m = r.stanzas[0]!;
    expect(m.name).to.equal('message');
    expect(m.ns).to.equal('jabber:client');
    expect(m.getChildText('body')).to.equal('hi & bye');
    expect(m.getChild('x', 'urn:x')!.getChild('y', 'urn:x')).to.not.equal(undefined);
  });

  it('delivers a stanza split at every byte, including inside a multi-byte character', () => {
    const xml = Buffer.from("<message><body>héllo 🐦 ✓</body></message>", 'utf8');
    const chunks: Buffer[] = [Buffer.from(HEADER)];
    for (let i = 0; i < xml.length; i++) chunks.push(xml.subarray(i, i + 1));
    const r = run(chunks);
    expect(r.errors).to.deep.equal([]);
    expect(r.stanzas[0]!.getChildText('body')).to.equal('héllo 🐦 ✓');
  });

  it('resolves prefixed elements into default namespaces', () => {
    const r = run([HEADER, "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>",
      "<iq type='get' id='1'><p:query xmlns:p='jabber:iq:roster'/></iq>"]);
    expect(r.stanzas[0]!.name).to.equal('features');
    expect(r.stanzas[0]!.ns).to.equal('http://etherx.jabber.org/streams');
    const q = r.stanzas[1]!.getChild('query', 'jabber:iq:roster')!;
    expect(q.attrs.xmlns).to.equal('jabber:iq:roster');
    expect(q.toString()).to.contain("xmlns='jabber:iq:roster'");
  });

  it('ends the stream on </stream:stream>', () => {
    expect(run([HEADER, '</stream:stream>']).ended).to.equal(true);
  });

  it('accepts CDATA and character references', () => {
    const r = run([HEADER, '<message><body><![CDATA[<b>&]]> &#65;&#x42;</body></message>']);
    expect(r.stanzas[0]!.getChildText('body')).to.equal('<b>& AB');
  });

  const bad: [string, string, string][] = [
    ['a comment', '<!-- hi -->', 'restricted-xml'],
    ['a DTD', '<!DOCTYPE foo [<!ENTITY a "b">]>', 'restricted-xml'],
    ['a processing instruction', '<?php x ?>', 'restricted-xml'],
    ['an undefined entity', '<message><body>&lol;</body></message>', 'not-well-formed'],
    ['mismatched tags', '<message><body></message>', 'not-well-formed'],
    ['a duplicate attribute', "<message to='a' to='b'/>", 'not-well-formed'],
    ['an unquoted attribute', '<message to=a/>', 'not-well-formed'],
    ['< in an attribute value', "<message to='a<b'/>", 'not-well-formed'],
    ['an unbound prefix', '<foo:bar/>', 'bad-namespace-prefix'],
    ['text between stanzas', 'hello', 'not-well-formed'],
    ['a control character', '<message><body>\u0001</body></message>', 'not-well-formed'],
  ];
  for (const [what, xml, condition] of bad) {
    it(`rejects ${what} with ${condition}`, () => {
      expect(run([HEADER, xml]).errors).to.deep.equal([condition]);
    });
  }

  it('rejects invalid UTF-8', () => {
    const r = run([Buffer.from(HEADER), Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0xfe, 0x3c, 0x2f, 0x61, 0x3e])]);
    expect(r.errors).to.deep.equal(['not-well-formed']);
  });

  it('accepts a literal U+FFFD split across reads', () => {
    const body = Buffer.from('<m>\uFFFD</m>', 'utf8');
    const r = run([Buffer.from(HEADER), body.subarray(0, 4), body.subarray(4)]);
    expect(r.errors).to.deep.equal([]);
    expect(r.stanzas[0]!.text()).to.equal('\uFFFD');
  });

  it('rejects invalid UTF-8 in a read that also holds a literal U+FFFD', () => {
    const r = run([Buffer.from(HEADER), Buffer.concat([Buffer.from('<m>\uFFFD'), Buffer.from([0xff]), Buffer.from('</m>')])]);
    expect(r.errors).to.deep.equal(['not-well-formed']);
    expect(r.stanzas).to.deep.equal([]);
  });

  it('names a comment a comment when its opening is split across reads (found by fuzzing)', () => {
    const texts: string[] = [];
    const p = new XmlStreamParser({ streamStart: () => {}, stanza: () => {}, streamEnd: () => {}, error: (_c, text) => texts.push(text) });
    p.write(HEADER);
    p.write('<!-');
    p.write('- hi -->');
    expect(texts).to.deep.equal(['comments are not allowed']);
  });

  it('rejects characters XML forbids inside CDATA too (found by fuzzing)', () => {
    const r = run([HEADER, '<message><body><![CDATA[a\u000fb]]></body></message>']);
    expect(r.errors).to.deep.equal(['not-well-formed']);
    expect(r.stanzas).to.deep.equal([]);
  });

  it('holds an XML declaration to the size limit whether it comes in one read or many (found by fuzzing)', () => {
    const decl = `<?xml version='1.0' ${'x'.repeat(3000)}?>`;
    const limits = { maxStanzaSize: 2048, maxDepth: 10 };
    expect(run([decl + HEADER.slice(HEADER.indexOf('?>') + 2)], limits).errors).to.deep.equal(['policy-violation']);
    expect(run([...decl].map((c) => c), limits).errors).to.deep.equal(['policy-violation']);
  });

  it('rejects a qualified name with two colons (found by fuzzing)', () => {
    const r = run([HEADER, "<p::x xmlns:p='urn:p'/>"]);
    expect(r.errors).to.deep.equal(['not-well-formed']);
    expect(r.stanzas).to.deep.equal([]);
  });

  it('rejects a qualified name whose local part is no name, like p:8 (found by fuzzing)', () => {
    const r = run([HEADER, "<p:8 xmlns:p='urn:p'/>"]);
    expect(r.errors).to.deep.equal(['not-well-formed']);
    expect(r.stanzas).to.deep.equal([]);
  });

  it('puts an unprefixed child of a prefixed element in the default namespace, not its parent\'s', () => {
    const r = run([HEADER, "<message><p:x xmlns:p='urn:p'><c/><d xmlns='urn:d'><e/></d></p:x><q:y xmlns:q='urn:q' xmlns='urn:z'><f/></q:y></message>"]);
    expect(r.errors).to.deep.equal([]);
    const [x, y] = r.stanzas[0]!.elements();
    expect([x!.ns, x!.elements()[0]!.ns, x!.elements()[1]!.ns, x!.elements()[1]!.elements()[0]!.ns]).to.deep.equal(['urn:p', 'jabber:client', 'urn:d', 'urn:d']);
    expect([y!.ns, y!.elements()[0]!.ns]).to.deep.equal(['urn:q', 'urn:z']);
    // Serialised and parsed again, every element keeps its namespace.
    const again = run([HEADER, r.stanzas[0]!.toString()]).stanzas[0]!;
    expect(again.elements()[0]!.elements()[0]!.ns).to.equal('jabber:client');
    expect(again.elements()[1]!.elements()[0]!.ns).to.equal('urn:z');
  });

  it('does not hold white-space keep-alives against the size limit (found by fuzzing)', () => {
    const r = run([HEADER, ...Array.from({ length: 3000 }, () => ' '), '<presence/>'], { maxStanzaSize: 2048, maxDepth: 10 });
    expect(r.errors).to.deep.equal([]);
    expect(r.stanzas.length).to.equal(1);
  });

  it('takes text as it comes, entities split across reads included', () => {
    const body = Buffer.from("<message><body>a &amp; b &#x1F600; c &lt;&#65;</body></message>");
    const r = run([HEADER, ...Array.from(body, (b) => Buffer.from([b]))]);
    expect(r.errors).to.deep.equal([]);
    expect(r.stanzas[0]!.getChildText('body')).to.equal('a & b \u{1F600} c <A');
  });

  it('refuses a reference longer than any entity, whether it arrives whole or a byte at a time', () => {
    const ref = `&#${'0'.repeat(40)}65;`;
    expect(run([HEADER, `<message><body>${ref}</body></message>`]).errors).to.deep.equal(['not-well-formed']);
    expect(run([HEADER, '<message><body>', ...ref.split('')]).errors).to.deep.equal(['not-well-formed']);
  });

  it('parses a long body sent one byte per read in linear time (a slow sender)', function () {
    this.timeout(60_000);
    const body = Buffer.from(`<message><body>${'x'.repeat(256 * 1024 - 100)}</body></message>`);
    const t0 = performance.now();
    const r = run([HEADER, ...Array.from({ length: body.length }, (_, i) => body.subarray(i, i + 1))]);
    const ms = performance.now() - t0;
    expect(r.errors).to.deep.equal([]);
    expect(r.stanzas.length).to.equal(1);
    // Held and scanned again at every read, this took about 20 s; taken as it comes, well under one.
    expect(ms).to.be.below(5000);
  });

  it('enforces the stanza size limit, even before the stanza ends', () => {
    const r = run([HEADER, '<message><body>' + 'x'.repeat(3000)], { maxStanzaSize: 2048, maxDepth: 10 });
    expect(r.errors).to.deep.equal(['policy-violation']);
  });

  describe('a start tag that trickles in', () => {
    // Held whole until its '>', a tag sent a byte per read was copied and read again from '<' at every
    // read: quadratic (a 256 KB element name took minutes of CPU). The reader now takes each read.
    const SHAPES: [string, string][] = [
      ['an element name', `<${'n'.repeat(4000)}/>`],
      ['an attribute name', `<message ${'a'.repeat(4000)}='1'/>`],
      ['an attribute value', `<message id='${'v'.repeat(4000)}'/>`],
    ];
    for (const [what, xml] of SHAPES) {
      it(`holds no copy of ${what} between reads, and parses it the same`, () => {
        const stanzas: Element[] = [];
        const errors: string[] = [];
        const p = new XmlStreamParser({ streamStart: () => {}, stanza: (s) => stanzas.push(s), streamEnd: () => {}, error: (c) => errors.push(c) });
        p.write(HEADER);
        let mostHeld = 0;
        for (const ch of xml) { p.write(ch); mostHeld = Math.max(mostHeld, p.held); }
        expect(errors).to.deep.equal([]);
        expect(mostHeld).to.be.below(4);
        expect(stanzas.map(String)).to.deep.equal(run([HEADER, xml]).stanzas.map(String));
      });
    }

    it('fails on a character no attribute value may hold when it arrives, not at the closing quote', () => {
      const r = run([HEADER, "<message id='abc", '<', 'def']);
      expect(r.errors).to.deep.equal(['not-well-formed']);
    });

    it('still refuses an unterminated tag past the limit, trickled or whole', () => {
      const LIMITS: XmlStreamLimits = { maxStanzaSize: 200, maxDepth: 4 };
      const xml = `<message id='${'v'.repeat(220)}`;
      expect(run([HEADER, ...xml], LIMITS).errors).to.deep.equal(['policy-violation']);
      expect(run([HEADER, xml], LIMITS).errors).to.deep.equal(['policy-violation']);
      expect(run([HEADER, ...`<message id='${'v'.repeat(180)}`], LIMITS).errors).to.deep.equal([]);
    });
  });

  describe('limits hold however the bytes are split', () => {
    const LIMITS: XmlStreamLimits = { maxStanzaSize: 200, maxDepth: 4 };
    /** A stanza of exactly n characters. */
    const stanzaOf = (n: number) => {
      const open = "<message to='a@b'><body>";
      const close = '</body></message>';
      return open + 'x'.repeat(n - open.length - close.length) + close;
    };
    const SPLITS: [string, (xml: string) => string[]][] = [
      ['in one chunk', (xml) => [xml]],
      ['one character at a time', (xml) => [...xml]],
      ['in 7-character chunks', (xml) => xml.match(/[^]{1,7}/g)!],
    ];
    /** Every split in two, at each index: inside tags, text, end tags and between them. */
    const everySplit = (xml: string) => Array.from({ length: xml.length - 1 }, (_, i) => [xml.slice(0, i + 1), xml.slice(i + 1)]);

    for (const [how, split] of SPLITS) {
      it(`accepts a stanza of exactly the limit ${how}`, () => {
        const r = run([HEADER, ...split(stanzaOf(200))], LIMITS);
        expect(r.errors).to.deep.equal([]);
        expect(r.stanzas).to.have.length(1);
      });
      it(`refuses a stanza one character over the limit ${how}`, () => {
        const r = run([HEADER, ...split(stanzaOf(201))], LIMITS);
        expect(r.errors).to.deep.equal(['policy-violation']);
        expect(r.stanzas).to.have.length(0);
      });
      it(`refuses a self-closing stanza over the limit ${how}`, () => {
        const xml = `<presence id='${'i'.repeat(200)}'/>`;
        const r = run([HEADER, ...split(xml)], LIMITS);
        expect(r.errors).to.deep.equal(['policy-violation']);
        expect(r.stanzas).to.have.length(0);
      });
      it(`refuses nesting one level too deep ${how}`, () => {
        const ok = run([HEADER, ...split('<a><b><c><d/></c></b></a>')], LIMITS);
        expect(ok.errors).to.deep.equal([]);
        const deep = run([HEADER, ...split('<a><b><c><d><e/></d></c></b></a>')], LIMITS);
        expect(deep.errors).to.deep.equal(['policy-violation']);
        expect(deep.stanzas).to.have.length(0);
      });
    }

    it('refuses an oversized stanza at every split point, and emits the good one before it', () => {
      const xml = '<m/>' + stanzaOf(201);
      for (const chunks of everySplit(xml)) {
        const r = run([HEADER, ...chunks], LIMITS);
        expect(r.errors, chunks.join(' | ')).to.deep.equal(['policy-violation']);
        expect(r.stanzas, chunks.join(' | ')).to.have.length(1);
      }
    });

    it('accepts a stanza of exactly the limit at every split point', () => {
      for (const chunks of everySplit(stanzaOf(200))) {
        const r = run([HEADER, ...chunks], LIMITS);
        expect(r.errors, chunks.join(' | ')).to.deep.equal([]);
        expect(r.stanzas).to.have.length(1);
      }
    });

    it('counts CDATA sections towards the limit', () => {
      const r = run([HEADER, `<message><body><![CDATA[${'x'.repeat(300)}]]></body></message>`], LIMITS);
      expect(r.errors).to.deep.equal(['policy-violation']);
    });

    it('refuses an oversized stream header, whole or split', () => {
      const header = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${'h'.repeat(300)}'>`;
      expect(run([header], LIMITS).errors).to.deep.equal(['policy-violation']);
      expect(run([...header], LIMITS).errors).to.deep.equal(['policy-violation']);
    });

    it('refuses unterminated markup between stanzas however it arrives', () => {
      const junk = `<message to='${'a'.repeat(300)}`;
      expect(run([HEADER, junk], LIMITS).errors).to.deep.equal(['policy-violation']);
      expect(run([HEADER, ...junk.match(/[^]{1,9}/g)!], LIMITS).errors).to.deep.equal(['policy-violation']);
    });

    it('holds each of several stanzas in one chunk to the limit on its own', () => {
      const r = run([HEADER, stanzaOf(200) + stanzaOf(200) + stanzaOf(200)], LIMITS);
      expect(r.errors).to.deep.equal([]);
      expect(r.stanzas).to.have.length(3);
    });

    it('refuses a 300 KiB message in one chunk under the default limit (issue reproduction)', () => {
      const r = run([HEADER, `<message to="x@localhost"><body>${'a'.repeat(300 * 1024)}</body></message>`]);
      expect(r.errors).to.deep.equal(['policy-violation']);
      expect(r.stanzas).to.have.length(0);
    });
  });

  it('enforces the nesting depth limit', () => {
    const r = run([HEADER, '<a>'.repeat(11)], { maxStanzaSize: 100000, maxDepth: 10 });
    expect(r.errors).to.deep.equal(['policy-violation']);
  });

  it('takes attributes named like inherited object properties (constructor, toString) as any other', () => {
    const r = run([HEADER, "<message constructor='a' toString='b' to='c@d'/>"]);
    expect(r.errors).to.deep.equal([]);
    expect(r.stanzas[0]!.attrs.constructor).to.equal('a');
  });

  it('stops after the first error', () => {
    const r = run([HEADER, '<!-- x --><message/>']);
    expect(r.stanzas).to.have.length(0);
  });

  it('decodes only predefined entities and valid character references', () => {
    expect(decodeEntities('&lt;&gt;&amp;&quot;&apos;')).to.equal('<>&"\'');
    expect(decodeEntities('&#0;')).to.equal(null);
    expect(decodeEntities('&#xD800;')).to.equal(null);
    expect(decodeEntities('a & b')).to.equal(null);
  });
});

describe('Element', () => {
  it('serialises with escaping and round-trips', () => {
    const m = el('message', { to: "a'b", type: 'chat' }, el('body', {}, '<&>'));
    expect(m.toString()).to.equal("<message to='a&apos;b' type='chat'><body>&lt;&amp;&gt;</body></message>");
    const r = run([HEADER, m.toString()]);
    expect(r.stanzas[0]!.toString()).to.equal(m.toString());
  });

  it('children built with c() inherit the parent namespace', () => {
    const q = new Element('query', { xmlns: 'jabber:iq:roster' });
    q.c('item', { jid: 'a@b' });
    expect(q.getChild('item', 'jabber:iq:roster')).to.not.equal(undefined);
  });
});
