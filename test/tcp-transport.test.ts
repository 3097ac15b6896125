// The TCP transport's framing over a real socket pair: the RFC 6120 header, features and close it
// writes for the session, and the rule that a stream error is preceded by our header when we have
// not opened our stream yet.
import { expect } from 'chai';
import net from 'node:net';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import { Element, type Attrs } from '../protocol/xml.js';
import { NS } from '../protocol/namespaces.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { TcpTransport } from '../src/transport/tcp.js';
import type { StreamHeader, TransportHandler } from '../src/transport/transport.js';

const PEER_HEADER = `<?xml version='1.0'?><stream:stream xmlns='${NS.client}' xmlns:stream='${NS.streams}' to='localhost' version='1.0'>`;
const OUR_HEADER: StreamHeader = { xmlns: NS.client, id: 'abc', from: 'localhost', version: '1.0', lang: 'en' };
const OUR_HEADER_XML = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' ` +
  `id='abc' from='localhost' version='1.0' xml:lang='en'>`;

interface Recorder extends TransportHandler {
  starts: Attrs[];
  elements: Element[];
  closedCount: number;
}

/** A transport on the server end of a loopback connection, and the client end's received text. */
async function pair(withHeader: boolean): Promise<{
  serverSocket: net.Socket;
  transport: TcpTransport; handler: Recorder; client: net.Socket; received(): string; ended: Promise<void>; done(): void;
}> {
  const handler: Recorder = {
    starts: [], elements: [], closedCount: 0,
    streamStart(_name, attrs) { this.starts.push(attrs); },
    element(el) { this.elements.push(el); },
    closed() { this.closedCount++; },
  };
  if (withHeader) handler.header = () => OUR_HEADER;
  const metrics = new Metrics();
  let transport!: TcpTransport;
  let serverSocket!: net.Socket;
  const server = net.createServer();
  const accepted = new Promise<void>((resolve) => server.once('connection', (socket) => {
    serverSocket = socket;
    transport = new TcpTransport(socket, {
      limits: { maxStanzaSize: 1024, maxDepth: 8 }, bytesPerSecond: 1 << 30,
      log: createLogger('error'), metrics, kind: 'c2s',
    });
    transport.setHandler(handler);
    resolve();
  }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  let text = '';
  client.on('data', (d) => { text += d.toString('utf8'); });
  const ended = new Promise<void>((resolve) => client.once('end', resolve));
  await accepted;
  return {
    serverSocket, transport, handler, client, received: () => text, ended,
    done() { client.destroy(); server.close(); },
  };
}

const until = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond(), 'timed out waiting').to.equal(true);
};

describe('TCP transport', () => {
  it('opens, sends features and closes the stream with the RFC 6120 framing, in order', async () => {
    const p = await pair(true);
    try {
      p.client.write(PEER_HEADER);
      await until(() => p.handler.starts.length === 1);
      expect(p.handler.starts[0]!.to).to.equal('localhost');
      p.transport.openStream(OUR_HEADER);
      const features = new Element('features', {}, [], NS.streams);
      features.c('bind', { xmlns: NS.bind });
      p.transport.sendFeatures(features);
      p.transport.closeStream();
      await p.ended;
      expect(p.received()).to.equal(`${OUR_HEADER_XML}<stream:features><bind xmlns='${NS.bind}'/></stream:features></stream:stream>`);
      await until(() => p.handler.closedCount === 1);
    } finally {
      p.done();
    }
  });

  it('writes our header before a stream error raised before our stream is open', async () => {
    const p = await pair(true);
    try {
      p.client.write('<!DOCTYPE stream:stream>');
      await p.ended;
      const text = p.received();
      expect(text.startsWith(OUR_HEADER_XML), text).to.equal(true);
      expect(text).to.include(`<stream:error><restricted-xml xmlns='${NS.streamErrors}'/>`);
      expect(text.endsWith('</stream:stream>')).to.equal(true);
      expect(text.split('<stream:stream').length - 1, 'the header is written once').to.equal(1);
    } finally {
      p.done();
    }
  });

  it('sends a stream error bare when the session has no header to give (components)', async () => {
    const p = await pair(false);
    try {
      p.transport.streamError('not-authorized');
      await p.ended;
      expect(p.received()).to.equal(`<stream:error><not-authorized xmlns='${NS.streamErrors}'/></stream:error></stream:stream>`);
    } finally {
      p.done();
    }
  });

  it('after a restart, parses the peer\'s new stream and opens ours again before an error', async () => {
    const p = await pair(true);
    try {
      p.client.write(PEER_HEADER);
      await until(() => p.handler.starts.length === 1);
      p.transport.openStream(OUR_HEADER);
      p.transport.restartStream();
      p.client.write(PEER_HEADER + "<iq type='get' id='1'/>");
      await until(() => p.handler.elements.length === 1);
      expect(p.handler.starts.length).to.equal(2);
      expect(p.handler.elements[0]!.ns).to.equal(NS.client);
      p.transport.streamError('conflict');
      await p.ended;
      expect(p.received().split('<stream:stream').length - 1, 'one header per stream').to.equal(2);
    } finally {
      p.done();
    }
  });

  it('writes in order, drops writes after close, and notes when the peer last spoke', async () => {
    const p = await pair(true);
    try {
      const before = p.transport.lastActivity;
      await new Promise((r) => setTimeout(r, 20));
      p.client.write(PEER_HEADER);
      await until(() => p.handler.starts.length === 1);
      expect(p.transport.lastActivity).to.be.greaterThan(before);
      p.transport.write('<a/>');
      p.transport.write('<b/>');
      p.transport.closeStream();
      p.transport.write('<c/>');
      expect(p.transport.isClosing).to.equal(true);
      await p.ended;
      expect(p.received()).to.equal('<a/><b/></stream:stream>');
    } finally {
      p.done();
    }
  });

  it('leaves the socket\'s other close listeners in place across STARTTLS, and reports the close once', async () => {
    const pems = await generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' });
    const context = tls.createSecureContext({ cert: pems.cert, key: pems.private });
    const p = await pair(true);
    try {
      // The listener drops its table entry for the connection on the plain socket's close.
      let tableEntryDropped = false;
      p.serverSocket.once('close', () => { tableEntryDropped = true; });
      p.client.write(PEER_HEADER + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
      await until(() => p.handler.elements.length === 1);
      p.transport.write(`<proceed xmlns='${NS.tls}'/>`);
      p.transport.startTls(context);
      await until(() => p.received().includes('<proceed'));
      const secure = tls.connect({ socket: p.client, rejectUnauthorized: false });
      await new Promise<void>((resolve) => secure.once('secureConnect', () => resolve()));
      await until(() => p.transport.secure);
      secure.write(PEER_HEADER);
      await until(() => p.handler.starts.length === 2);
      secure.end();
      await until(() => p.handler.closedCount === 1);
      await until(() => tableEntryDropped);
      await new Promise((r) => setTimeout(r, 50));
      expect(p.handler.closedCount).to.equal(1);
    } finally {
      p.done();
    }
  });
});
