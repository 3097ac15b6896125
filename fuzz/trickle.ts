// Measures the XML stream parser on a stanza that arrives one byte per read (a slow sender) against the
// same stanza in one read, at growing sizes: the ratio shows whether parsing stays linear. The fuzz
// targets cannot see this (their inputs are a few kilobytes); run it by hand:
//   npm run build && node dist/fuzz/trickle.js
import { XmlStreamParser } from '../protocol/xml-stream.js';

const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

function parseMs(body: string, bytesPerRead: number): number {
  const parser = new XmlStreamParser({
    streamStart() {}, stanza() {}, streamEnd() {},
    error(condition, text) { throw new Error(`${condition}: ${text}`); },
  });
  parser.write(HEADER);
  const bytes = Buffer.from(body);
  const t0 = performance.now();
  for (let i = 0; i < bytes.length; i += bytesPerRead) parser.write(bytes.subarray(i, i + bytesPerRead));
  return performance.now() - t0;
}

const rows: string[][] = [['shape', 'size', 'one read ms', 'one byte per read ms']];
for (const size of [4096, 16384, 65536, 262000]) {
  const shapes: [string, string][] = [
    ['text', `<message><body>${'x'.repeat(size)}</body></message>`],
    ['attribute', `<message id='${'x'.repeat(size)}'/>`],
    ['attribute name', `<message ${'x'.repeat(size)}='1'/>`],
    ['element name', `<${'x'.repeat(size)}/>`],
  ];
  for (const [shape, body] of shapes) {
    rows.push([shape, String(size), parseMs(body, body.length).toFixed(1), parseMs(body, 1).toFixed(1)]);
  }
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) console.log(r.map((c, i) => c.padStart(widths[i]!)).join('  '));
