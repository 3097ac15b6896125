// XEP-0198 state of one session, driven through its elements over a transport that records writes.
import { expect } from 'chai';
import { Element } from '../protocol/xml.js';
import { NS } from '../protocol/namespaces.js';
import { parseStanzaString } from '../protocol/xml-stream.js';
import type { StreamErrorCondition } from '../protocol/errors.js';
import { StreamManagement } from '../src/streams/stream-management.js';
import { handleCounted, continueWith, hold, type Done } from '../src/streams/completion.js';
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
  detail: string | Element | undefined;
  streamError(condition: StreamErrorCondition, _text?: string, detail?: string | Element): void { this.error = condition; this.detail = detail; this.isClosing = true; }
  destroy(): void { this.isClosing = true; }
}

const sm = (name: string, attrs: Record<string, string> = {}) => new Element(name, { xmlns: NS.sm, ...attrs });

function setup(resumeSeconds = 300) {
  const ids: string[] = [];
  const conn = new RecordingTransport();
  const state = new StreamManagement({ resumeSeconds, resumable: (id) => ids.push(id), write: (xml) => conn.write(xml) });
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
    for (let i = 0; i < 3; i++) state.receive();
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
    expect(String(conn.detail), 'XEP-0198 §5 names the counts').to.equal(`<handled-count-too-high xmlns='${NS.sm}' h='5' send-count='3'/>`);
    expect(state.takeUnacked().map((u) => u.xml)).to.deep.equal([`<message id='3'/>`]);
    expect(state.takeUnacked(), 'handed over once').to.deep.equal([]);
  });

  it('resumes on a new connection: <resumed/> with our h, then what the client had not confirmed', () => {
    const { state, conn } = setup();
    state.element(sm('enable', { resume: 'true' }), conn);
    const id = parseStanzaString(conn.written[0]!, NS.sm)!.attrs.id!;
    state.receive();
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

  it('a planned close\'s <r/> is settled by the answer to it, not by the answer to an earlier request', async () => {
    const { state, conn } = setup();
    state.element(sm('enable'), conn);
    // Ten unacknowledged stanzas: the server asks (<r/>), and the answer is on its way.
    for (let n = 1; n <= 10; n++) state.sent(`<message id='${n}'/>`, 'message');
    expect(state.ackRequestDue()).to.equal(`<r xmlns='${NS.sm}'/>`);
    state.sent(`<message id='11'/>`, 'message');
    let settled = false;
    const confirmed = state.confirmReceived(conn, 2000).then(() => { settled = true; });
    state.element(sm('a', { h: '10' }), conn);
    await Promise.resolve();
    expect(settled, 'the earlier request\'s answer does not count the 11th').to.equal(false);
    state.element(sm('a', { h: '11' }), conn);
    await confirmed;
    expect(state.takeUnacked()).to.deep.equal([]);
  });

  it('answers an unknown stream-management element with unsupported-stanza-type', () => {
    const { state, conn } = setup();
    state.element(sm('bogus'), conn);
    expect(conn.error).to.equal('unsupported-stanza-type');
  });

  describe('h counts only stanzas whose handling is complete, as a prefix', () => {
    const stanza = (id: string) => new Element('message', { id });

    /** Receives one stanza the way a session does; handle runs while it is being handled. */
    function receive(state: StreamManagement, el: Element, handle: () => void): void {
      const seq = state.receive();
      handleCounted(el, state, seq, handle);
    }

    function ask(state: StreamManagement, conn: RecordingTransport): string | undefined {
      const before = conn.written.length;
      state.element(sm('r'), conn);
      return conn.written[before];
    }

    it('a stanza handled synchronously counts at once; one held counts when released', () => {
      const { state, conn } = setup();
      state.element(sm('enable'), conn);
      receive(state, stanza('1'), () => {});
      let release: Done | null = null;
      const second = stanza('2');
      receive(state, second, () => { release = hold(second); });
      expect(state.handledIn).to.equal(1);
      expect(state.pendingCount).to.equal(1);
      release!();
      expect(state.handledIn).to.equal(2);
      expect(ask(state, conn)).to.equal(`<a xmlns='${NS.sm}' h='2'/>`);
    });

    it('stanzas completing out of order advance h over the longest complete prefix only', () => {
      const { state, conn } = setup();
      state.element(sm('enable'), conn);
      const releases: Done[] = [];
      for (const id of ['1', '2', '3', '4']) {
        const el = stanza(id);
        receive(state, el, () => { releases.push(hold(el)!); });
      }
      receive(state, stanza('5'), () => {});
      expect(state.handledIn).to.equal(0);
      releases[2]!(); // the third
      releases[1]!(); // the second
      expect(state.handledIn, 'the first is still pending').to.equal(0);
      releases[0]!();
      expect(state.handledIn, 'first three complete; the fourth is pending').to.equal(3);
      releases[0]!(); // twice: nothing more
      expect(state.handledIn).to.equal(3);
      releases[3]!();
      expect(state.handledIn).to.equal(5);
    });

    it('a hold taken on another stanza, or outside its handling, does not count for it', () => {
      const { state, conn } = setup();
      state.element(sm('enable'), conn);
      const el = stanza('1');
      receive(state, el, () => { expect(hold(stanza('other'))).to.equal(null); });
      expect(hold(el), 'after its handling returned').to.equal(null);
      expect(state.handledIn).to.equal(1);
    });

    it('a continuation hands the hold on: complete only when the last part is', () => {
      const { state, conn } = setup();
      state.element(sm('enable'), conn);
      const el = stanza('1');
      let first: Done | null = null;
      receive(state, el, () => { first = hold(el); });
      let second: Done | null = null;
      let third: Done | null = null;
      // Later (after an await), the handling goes on and fans out to two asynchronous parts.
      continueWith(el, first, () => { second = hold(el); third = hold(el); });
      expect(state.handledIn).to.equal(0);
      second!();
      expect(state.handledIn).to.equal(0);
      third!();
      expect(state.handledIn).to.equal(1);
    });

    it('<r/> waits for pending stanzas, then answers each request with the safe h', () => {
      const { state, conn } = setup();
      state.element(sm('enable'), conn);
      const el = stanza('1');
      let release: Done | null = null;
      receive(state, el, () => { release = hold(el); });
      receive(state, stanza('2'), () => {});
      const before = conn.written.length;
      state.element(sm('r'), conn);
      state.element(sm('r'), conn);
      expect(conn.written.length, 'no answer while the first is pending').to.equal(before);
      release!();
      expect(conn.written.slice(before)).to.deep.equal([`<a xmlns='${NS.sm}' h='2'/>`, `<a xmlns='${NS.sm}' h='2'/>`]);
    });

    it('<r/> is answered with what is safe when pending stanzas take too long', async function () {
      this.timeout(5000);
      const { state, conn } = setup();
      state.element(sm('enable'), conn);
      receive(state, stanza('1'), () => {});
      const el = stanza('2');
      receive(state, el, () => { hold(el); });
      const before = conn.written.length;
      state.element(sm('r'), conn);
      await new Promise((r) => setTimeout(r, 2200));
      expect(conn.written.slice(before)).to.deep.equal([`<a xmlns='${NS.sm}' h='1'/>`]);
    });

    it('costs nothing before <enable/>: nothing is counted', () => {
      const { state } = setup();
      expect(state.receive()).to.equal(0);
      expect(state.handledIn).to.equal(0);
    });
  });
});
