// XEP-0198 state of one session, driven through its elements over a transport that records writes.
import { expect } from 'chai';
import { Element } from '../protocol/xml.js';
import { NS } from '../protocol/namespaces.js';
import { parseStanzaString } from '../protocol/xml-stream.js';
import type { StreamErrorCondition } from '../protocol/errors.js';
import { StreamManagement } from '../src/streams/stream-management.js';
import type { StreamHeader, Transport, TransportHandler } from '../src/transport/transport.js';

/** A transport that keeps what is written, in order, and the stream error if any. */
class RecordingTransport implements Transport {
  readonly remoteAddress = '127.0.0.1';
  readonly secure = true;
  readonly lastActivity = Date.now();
  isClosing = false;
  written: string[] = [];
  error: StreamErrorCondition | null = null;
  setHandler(_h: TransportHandler): void {}
  openStream(_h: StreamHeader): void {}
  sendFeatures(f: Element): void { this.written.push(f.toString()); }
  write(xml: string): void { if (!this.isClosing) this.written.push(xml); }
  send(el: Element): void { this.write(el.toString()); }
  restartStream(): void {}
  closeStream(): void { this.isClosing = true; }
  streamError(condition: StreamErrorCondition): void { this.error = condition; this.isClosing = true; }
  destroy(): void { this.isClosing = true; }
}

const sm = (name: string, attrs: Record<string, string> = {}) => new Element(name, { xmlns: NS.sm, ...attrs });

function setup(resumeSeconds = 300) {
  const ids: string[] = [];
  const state = new StreamManagement({ resumeSeconds, resumable: (id) => ids.push(id) });
  const conn = new RecordingTransport();
  return { state, conn, ids };
}

describe('stream management (XEP-0198)', () => {
  it('enables once; a second <enable/> fails with unexpected-request', () => {
    const { state, conn, ids } = setup();
    state.element(sm('enable'), conn);
    state.element(sm('enable'), conn);
    expect(conn.written).to.deep.equal([
      `<enabled xmlns='${NS.sm}'/>`,
      `<failed xmlns='${NS.sm}'><unexpected-request xmlns='${NS.stanzaErrors}'/></failed>`,
    ]);
    expect(ids).to.deep.equal([]);
    expect(state.resumeWanted).to.equal(false);
  });

  it('offers resumption with an id and max when asked, and registers the id', () => {
    const { state, conn, ids } = setup(120);
    state.element(sm('enable', { resume: 'true' }), conn);
    const enabled = parseStanzaString(conn.written[0]!, NS.sm)!;
    expect(enabled.attrs).to.include({ resume: 'true', max: '120' });
    expect(enabled.attrs.id).to.be.a('string').and.have.length.greaterThan(10);
    expect(ids).to.deep.equal([enabled.attrs.id]);
    expect(state.resumeWanted).to.equal(true);
    const off = setup(0);
    off.state.element(sm('enable', { resume: '1' }), off.conn);
    expect(off.state.resumeWanted, 'resumption disabled by configuration').to.equal(false);
  });

  it('answers <r/> with the number of stanzas handled', () => {
    const { state, conn } = setup();
    state.element(sm('enable'), conn);
    for (let i = 0; i < 3; i++) state.handled();
    state.element(sm('r'), conn);
    expect(conn.written[1]).to.equal(`<a xmlns='${NS.sm}' h='3'/>`);
  });

  it('keeps sent stanzas only once enabled, and asks for an ack after ten, once until answered', () => {
    const { state, conn } = setup();
    state.sent('<message id="before"/>', 'message');
    expect(state.ackRequestDue()).to.equal(null);
    state.element(sm('enable'), conn);
    const due: (string | null)[] = [];
    for (let i = 0; i < 12; i++) {
      state.sent(`<message id='${i}'/>`, 'message');
      due.push(state.ackRequestDue());
    }
    expect(due.filter((d) => d !== null)).to.deep.equal([`<r xmlns='${NS.sm}'/>`]);
    expect(due.indexOf(`<r xmlns='${NS.sm}'/>`)).to.equal(9);
    state.element(sm('a', { h: '12' }), conn);
    for (let i = 0; i < 10; i++) state.sent('<iq/>', 'iq');
    expect(state.ackRequestDue(), 'asks again after the answer').to.equal(`<r xmlns='${NS.sm}'/>`);
    expect(state.takeUnacked()).to.have.length(10);
  });

  it('drops what <a/> confirms and refuses an h beyond what was sent', () => {
    const { state, conn } = setup();
    state.element(sm('enable'), conn);
    for (const id of ['1', '2', '3']) state.sent(`<message id='${id}'/>`, 'message');
    state.element(sm('a', { h: '2' }), conn);
    expect(conn.error).to.equal(null);
    state.element(sm('a', { h: '5' }), conn);
    expect(conn.error).to.equal('undefined-condition');
    expect(state.takeUnacked().map((u) => u.xml)).to.deep.equal([`<message id='3'/>`]);
    expect(state.takeUnacked(), 'handed over once').to.deep.equal([]);
  });

  it('resumes on a new connection: <resumed/> with our h, then what the client had not confirmed', () => {
    const { state, conn } = setup();
    state.element(sm('enable', { resume: 'true' }), conn);
    const id = parseStanzaString(conn.written[0]!, NS.sm)!.attrs.id!;
    state.handled();
    for (const n of ['1', '2', '3']) state.sent(`<message id='${n}'/>`, 'message');
    const next = new RecordingTransport();
    expect(state.resume(next, 1)).to.equal(true);
    expect(next.written).to.deep.equal([
      `<resumed xmlns='${NS.sm}' previd='${id}' h='1'/>`, `<message id='2'/>`, `<message id='3'/>`,
    ]);
    const bad = new RecordingTransport();
    expect(state.resume(bad, 9)).to.equal(false);
    expect(bad.error).to.equal('undefined-condition');
  });

  it('answers an unknown stream-management element with unsupported-stanza-type', () => {
    const { state, conn } = setup();
    state.element(sm('bogus'), conn);
    expect(conn.error).to.equal('unsupported-stanza-type');
  });
});
