// The proxy the fault-injection harness puts between each node and Redis: it must pass traffic, and
// a cut must really cut (open connections dropped, new ones refused) until it is restored.
import { expect } from 'chai';
import net from 'node:net';
import { CuttableProxy } from '../conformance/faults/services.js';

function echoServer(): Promise<net.Server> {
  const server = net.createServer((s) => s.pipe(s));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function roundTrip(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write('ping'));
    s.once('data', (d) => { s.destroy(); resolve(d.toString()); });
    s.once('error', reject);
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

describe('fault harness: the cuttable proxy', () => {
  it('passes traffic, drops and refuses connections while cut, and passes again once restored', async () => {
    const upstream = await echoServer();
    const proxy = new CuttableProxy(await freePort(), (upstream.address() as net.AddressInfo).port);
    try {
      await proxy.listen();
      expect(await roundTrip(proxy.port)).to.equal('ping');
      const open = net.connect({ host: '127.0.0.1', port: proxy.port });
      await new Promise((r) => open.once('connect', r));
      const closed = new Promise((r) => open.once('close', r));
      open.on('error', () => {});
      await proxy.cut();
      await closed;
      const err = await roundTrip(proxy.port).then(() => null, (e: NodeJS.ErrnoException) => e.code);
      expect(err).to.equal('ECONNREFUSED');
      await proxy.restore();
      expect(await roundTrip(proxy.port)).to.equal('ping');
    } finally {
      await proxy.close();
      upstream.close();
    }
  });
});
