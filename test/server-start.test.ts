// A start that fails (a port in use, the usual first-start failure) closes what it opened: the
// embedded database is closed before the error goes up, and the data directory opens again.
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defaultConfig, type Config } from '../src/config.js';
import { ServerCore } from '../src/server.js';

function configFor(dataDir: string, c2sPort: number | null): Config {
  const config = defaultConfig();
  config.dataDir = dataDir;
  config.nodeId = 'unit';
  config.logLevel = 'error';
  config.listen = {
    c2s: c2sPort === null ? null : { host: '127.0.0.1', port: c2sPort },
    c2sDirectTls: null, component: null, metrics: null, upload: null, websocket: null, websocketPlain: null,
  };
  return config;
}

describe('server start', function () {
  this.timeout(60000);
  let dataDir: string;
  let blocker: net.Server;
  let port: number;

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'perch-start-'));
    blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    port = (blocker.address() as net.AddressInfo).port;
  });
  after(async () => {
    blocker.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('closes the database when a listener cannot bind, and the data directory opens again', async () => {
    const failed = new ServerCore(configFor(dataDir, port));
    let error: unknown = null;
    try {
      await failed.start();
    } catch (e) {
      error = e;
    }
    expect((error as NodeJS.ErrnoException | null)?.code).to.equal('EADDRINUSE');
    let queried = true;
    try {
      await failed.stores.db.query('SELECT 1');
    } catch {
      queried = false;
    }
    expect(queried, 'the failed start left its database open').to.equal(false);

    const next = new ServerCore(configFor(dataDir, null));
    await next.start();
    const rows = await next.stores.db.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
    expect(rows[0]!.n).to.be.greaterThan(0);
    await next.stop();
  });
});
