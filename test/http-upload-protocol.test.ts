import { expect } from 'chai';
import { StanzaError } from '../protocol/errors.js';
import { parseForm } from '../protocol/forms.js';
import { NS } from '../protocol/namespaces.js';
import {
  UPLOAD_NS, UPLOAD_ROOM_NS, buildSlot, fileTooLarge, parseSlotRequest, quotaReached, uploadDiscoInfo,
} from '../protocol/http-upload.js';
import { contentDisposition, parseRange } from '../src/upload/http.js';
import { storedName } from '../src/upload/runtime.js';
import { xml } from './xml.js';

const iq = (request: string, sibling = '') => xml(`<iq type='get' id='1' to='upload.localhost'>${request}${sibling}</iq>`);
const req = (attrs: string, inner = '') => `<request xmlns='urn:xmpp:http:upload:0' ${attrs}>${inner}</request>`;

function errorOf(fn: () => unknown): StanzaError {
  try {
    fn();
  } catch (e) {
    if (e instanceof StanzaError) return e;
    throw e;
  }
  throw new Error('no error');
}

describe('HTTP File Upload wire (XEP-0363)', () => {
  it('reads filename, size and content-type', () => {
    const r = parseSlotRequest(iq(req("filename='très bien.JPG' size='23456' content-type='image/JPEG'")));
    expect(r).to.deep.equal({ filename: 'très bien.JPG', size: 23456, contentType: 'image/jpeg', room: null });
  });

  it('takes the room child inside the request or beside it', () => {
    const inside = parseSlotRequest(iq(req("filename='a' size='1'", `<room xmlns='${UPLOAD_ROOM_NS}' jid='r@conference.localhost'/>`)));
    const beside = parseSlotRequest(iq(req("filename='a' size='1'"), `<room xmlns='${UPLOAD_ROOM_NS}' jid='s@conference.localhost'/>`));
    expect(inside.room).to.equal('r@conference.localhost');
    expect(beside.room).to.equal('s@conference.localhost');
    expect(parseSlotRequest(iq(req("filename='a' size='1'"))).contentType).to.equal('application/octet-stream');
  });

  it('refuses bad requests with bad-request', () => {
    for (const attrs of [
      "size='1'", "filename='' size='1'", "filename='a' size='0'", "filename='a' size='-3'", "filename='a' size='1.5'",
      "filename='a' size='x'", "filename='a'", "filename='../etc/passwd' size='1'", "filename='a\\b' size='1'", "filename='..' size='1'",
      "filename='a' size='1' content-type='not a type'", "filename='a' size='99999999999999999'",
    ]) {
      expect(errorOf(() => parseSlotRequest(iq(req(attrs)))).condition, attrs).to.equal('bad-request');
    }
    expect(errorOf(() => parseSlotRequest(iq(req("filename='a' size='1'", `<room xmlns='${UPLOAD_ROOM_NS}'/>`)))).condition).to.equal('bad-request');
  });

  it('builds the slot with put headers and get', () => {
    const s = buildSlot('https://h/put', 'https://h/get', { Authorization: 'Basic x\r\ny' });
    expect(s.toString()).to.equal(`<slot xmlns='${UPLOAD_NS}'><put url='https://h/put'><header name='Authorization'>Basic xy</header></put><get url='https://h/get'/></slot>`);
  });

  it('says file-too-large with the maximum, and resource-constraint with retry', () => {
    const big = fileTooLarge(20480000).toElement();
    expect(big.attrs.type).to.equal('modify');
    expect(big.getChild('not-acceptable', NS.stanzaErrors)).to.not.equal(undefined);
    expect(big.getChild('file-too-large', UPLOAD_NS)!.getChildText('max-file-size')).to.equal('20480000');
    const quota = quotaReached('full', new Date('2026-01-02T03:04:05.678Z')).toElement();
    expect(quota.attrs.type).to.equal('wait');
    expect(quota.getChild('resource-constraint', NS.stanzaErrors)).to.not.equal(undefined);
    expect(quota.getChild('retry', UPLOAD_NS)!.attrs.stamp).to.equal('2026-01-02T03:04:05Z');
    expect(quotaReached('full', null).toElement().getChild('retry', UPLOAD_NS)).to.equal(undefined);
  });

  it('describes the service in disco#info with the max-file-size form', () => {
    const q = uploadDiscoInfo('HTTP File Upload', 1024);
    expect(q.getChild('identity')!.attrs).to.include({ category: 'store', type: 'file' });
    expect(q.getChildren('feature').map((f) => f.attrs.var)).to.include(UPLOAD_NS);
    const form = parseForm(q.getChild('x', NS.dataForms)!);
    expect(form.fields.map((f) => [f.var, f.values[0]])).to.deep.equal([['FORM_TYPE', UPLOAD_NS], ['max-file-size', '1024']]);
  });
});

describe('HTTP File Upload serving helpers', () => {
  it('parses single byte ranges', () => {
    expect(parseRange(undefined, 10)).to.equal(null);
    expect(parseRange('bytes=0-3', 10)).to.deep.equal({ start: 0, end: 3 });
    expect(parseRange('bytes=5-', 10)).to.deep.equal({ start: 5, end: 9 });
    expect(parseRange('bytes=-4', 10)).to.deep.equal({ start: 6, end: 9 });
    expect(parseRange('bytes=-40', 10)).to.deep.equal({ start: 0, end: 9 });
    expect(parseRange('bytes=8-100', 10)).to.deep.equal({ start: 8, end: 9 });
    expect(parseRange('bytes=10-', 10)).to.equal('unsatisfiable');
    expect(parseRange('bytes=-0', 10)).to.equal('unsatisfiable');
    expect(parseRange('bytes=0-1,4-5', 10)).to.equal(null);
    expect(parseRange('bytes=5-2', 10)).to.equal(null);
    expect(parseRange('items=0-1', 10)).to.equal(null);
  });

  it('writes a safe Content-Disposition (RFC 6266)', () => {
    expect(contentDisposition('inline', 'photo.png')).to.equal(`inline; filename="photo.png"; filename*=UTF-8''photo.png`);
    expect(contentDisposition('attachment', 'résumé "v2";.html')).to.equal(
      `attachment; filename="r_sum_ _v2__.html"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22%3B.html`);
  });

  it('names stored files id.ext', () => {
    expect(storedName({ id: 'abc123', name: 'Report.PDF' })).to.equal('abc123.pdf');
    expect(storedName({ id: 'abc123', name: 'noext' })).to.equal('abc123');
    expect(storedName({ id: 'abc123', name: 'odd.tar.gz' })).to.equal('abc123.gz');
  });
});
