// The proxy fault tests put between a node and Redis (conformance/faults/services.ts): it must pass
// traffic, and each kind of cut must do what it says to open connections and to new ones, until healed.
import { expect } from 'chai';
import net from 'node:net';
import { FaultProxy } from '../conformance/faults/services.js';

function echoServer(): Promise<net.Server> {
  const server = net.createServer((s) => { s.on('error', () => {}); s.pipe(s); });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** A connection through the proxy, with what came back and whether it closed. */
async function open(port: number): Promise<{ socket: net.Socket; received: () => string; closed: () => boolean; failed: Promise<string | null> }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  let data = '';
  let closed = false;
  socket.on('data', (d) => { data += d.toString(); });
  socket.on('close', () => { closed = true; });
  const failed = new Promise<string | null>((resolve) => {
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    socket.once('connect', () => resolve(null));
  });
  await failed;
  return { socket, received: () => data, closed: () => closed, failed };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function echoes(c: { socket: net.Socket; received: () => string }, text: string, ms = 1000): Promise<boolean> {
  const before = c.received().length;
  c.socket.write(text);
  for (const until = Date.now() + ms; Date.now() < until; await sleep(10)) {
    if (c.received().slice(before).includes(text)) return true;
  }
  return false;
}

describe('fault harness: the fault proxy', () => {
  let upstream: net.Server;
  let proxy: FaultProxy;
  beforeEach(async () => {
    upstream = await echoServer();
    proxy = new FaultProxy(0, (upstream.address() as net.AddressInfo).port);
    await proxy.listen();
  });
  afterEach(async () => {
    await proxy.close();
    upstream.close();
  });

  it('refuse: drops open connections and refuses new ones, on the same port again once healed', async () => {
    const port = proxy.port;
    const c = await open(port);
    expect(await echoes(c, 'ping')).to.equal(true);
    await proxy.cut('refuse');
    await sleep(50);
    expect(c.closed()).to.equal(true);
    expect(await (await open(port)).failed).to.equal('ECONNREFUSED');
    await proxy.heal();
    expect(proxy.port).to.equal(port);
    expect(await echoes(await open(port), 'again')).to.equal(true);
  });

  it('reset: drops open connections and closes new ones at once; passes again once healed', async () => {
    const c = await open(proxy.port);
    await proxy.cut('reset');
    await sleep(50);
    expect(c.closed()).to.equal(true);
    const d = await open(proxy.port);
    expect(await d.failed).to.equal(null);
    await sleep(50);
    expect(d.closed()).to.equal(true);
    await proxy.heal();
    expect(await echoes(await open(proxy.port), 'again')).to.equal(true);
  });

  it('silence: nothing passes, every connection stays open, new ones too; each goes on once healed', async () => {
    const c = await open(proxy.port);
    expect(await echoes(c, 'ping')).to.equal(true);
    await proxy.cut('silence');
    expect(await echoes(c, 'lost?', 300)).to.equal(false);
    const d = await open(proxy.port);
    expect(await d.failed).to.equal(null);
    expect(await echoes(d, 'hello?', 300)).to.equal(false);
    expect([c.closed(), d.closed()]).to.deep.equal([false, false]);
    await proxy.heal();
    // What was written while silent arrives after all, on the same connections.
    expect(await echoes(c, 'back')).to.equal(true);
    expect(c.received()).to.include('lost?');
    expect(await echoes(d, 'back')).to.equal(true);
    expect(d.received()).to.include('hello?');
  });
});
