// The XML stream parser (RFC 6120 §4, §11): it reports bad input only through its error event, never by
// throwing; the same bytes cut into different TCP reads give the same events; the stanzas it delivers
// serialise to XML that parses back to the same stanzas; and the stanza head reader agrees with it.
import { check, seededRandom, type FuzzTarget } from '../target.js';
import { XML_TOKENS, nsTokens } from './common.js';

const STREAM_HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";

export const xmlStreamTarget: FuzzTarget = {
  name: 'xml-stream',
  files: ['xml-stream', 'xml', 'stanza-head'],
  maxLen: 2048,
  dictionary: [
    ...XML_TOKENS, STREAM_HEADER, '</stream:stream>', '<message>', '</message>', '<iq ', '<presence/>', '<body>', '</body>',
    'xmlns:stream=', 'xmlns:p=', '<p:x ', '</p:x>', 'p:', 'xml:', 'xmlns:xml=', '\u00EF\u00BB\u00BF',
    ...nsTokens('jabber:client', 'http://etherx.jabber.org/streams', 'urn:xmpp:delay'),
  ],
  setup(p) {
    const { XmlStreamParser } = p.xmlStream;
    const { parseStanzaString } = p.xmlStream;
    const { readStanzaHead } = p.stanzaHead;
    // Small limits, so that inputs of a few kilobytes reach them.
    const limits = { maxStanzaSize: 1024, maxDepth: 8 };

    const parse = (chunks: (Buffer | string)[]) => {
      const events: string[] = [];
      const stanzas: import('../../protocol/xml.js').Element[] = [];
      let rootNs = '';
      let finished = false;
      const parser = new XmlStreamParser({
        streamStart: (name, attrs) => { rootNs = attrs.xmlns ?? ''; events.push(`start ${name} ${JSON.stringify(attrs)}`); },
        stanza: (el) => { check(!finished, 'a stanza after the end or an error'); stanzas.push(el); events.push(`stanza ${el.toString()}`); },
        streamEnd: () => { check(!finished, 'two ends'); finished = true; events.push('end'); },
        error: (condition, text) => { check(!finished, 'an error after the end or an error'); finished = true; events.push(`error ${condition} ${text}`); },
      }, limits);
      for (const c of chunks) parser.write(c);
      check(parser.depth <= limits.maxDepth, `depth ${parser.depth} over the limit`);
      return { events, stanzas, rootNs };
    };

    return (data) => {
      const whole = parse([data]);
      const next = seededRandom(data);
      const chunks: Buffer[] = [];
      for (let at = 0; at < data.length;) {
        const n = 1 + (next() % (next() % 4 === 0 ? 3 : 64));
        chunks.push(data.subarray(at, at + n));
        at += n;
      }
      const split = parse(chunks);
      // Within one run of text, a forbidden character and an undefined entity are both not-well-formed,
      // and which is found first depends on where the text was cut: the two count as one error here.
      const textError = (e: string) => e.replace(/^error not-well-formed (invalid character|undefined entity)$/, 'error not-well-formed bad text');
      const a = whole.events.map(textError).join('\n'), b = split.events.map(textError).join('\n');
      if (a !== b) {
        // Two differences are allowed. Invalid UTF-8 fails the read that holds it before that read is
        // parsed, so cut differently the input may deliver a few more events first (stanzas, another
        // error, the end of the stream). And a limit on unfinished markup can be hit, in small reads,
        // before the syntax error that lies past the limit is seen. Before that, events are the same.
        const last = (e: string[]) => e[e.length - 1] ?? '';
        const utf8 = [whole, split].some((r) => last(r.events) === 'error not-well-formed invalid UTF-8');
        const limit = [whole, split].some((r) => last(r.events).startsWith('error policy-violation')) &&
          [whole, split].every((r) => last(r.events).startsWith('error '));
        const [shorter, longer] = whole.events.length <= split.events.length ? [whole.events, split.events] : [split.events, whole.events];
        const prefix = shorter.slice(0, -1).every((e, i) => textError(e) === textError(longer[i]!));
        check(prefix && (utf8 || limit),
          `events differ when the input is cut into ${chunks.length} reads:\n${a}\n---\n${b}`);
      }
      // Written as a string (as the WebSocket transport does) for one input in four: it costs a third parse.
      const text = next() % 4 === 0 ? data.toString('utf8') : null;
      if (text !== null && Buffer.from(text, 'utf8').equals(data)) {
        const asString = parse([text]);
        check(whole.events.join('\n') === asString.events.join('\n'), 'events differ when the input is written as a string');
      }
      if (whole.rootNs.includes("'") || whole.rootNs.includes('&') || whole.rootNs.includes('<')) return;
      for (const stanza of whole.stanzas) {
        const xml = stanza.toString();
        const back = parseStanzaString(xml, whole.rootNs);
        check(back !== null && back.toString() === xml && back.ns === stanza.ns, `a stanza does not parse back: ${xml}`);
        const head = readStanzaHead(xml);
        check(head !== null && head.name === stanza.name && JSON.stringify(head.attrs) === JSON.stringify(stanza.attrs),
          `the head reader disagrees with the parser on ${xml}`);
      }
    };
  },
};
