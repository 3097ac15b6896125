// Idle clients are pinged (XEP-0199 §4.2 server-to-client): one that answers stays, one that does
// not is closed with connection-timeout. Reads each session's last activity through LocalSession.
import { expect } from 'chai';
import { startServer, rawLogin, streamErrorCondition, sleep, type RunningServer } from './harness.js';

const PING = /<iq [^>]*type=['"]get['"][^>]*>\s*<ping xmlns=['"]urn:xmpp:ping['"]\/>\s*<\/iq>/;

describe('conformance: pinging idle clients (XEP-0199)', function () {
  this.timeout(40000);
  let server: RunningServer;

  before(async function () {
    this.timeout(60000);
    server = await startServer({
      users: { quiet: 'pw', lively: 'pw' },
      configYaml: 'ping:\n  idleSeconds: 5\n  timeoutSeconds: 2\n',
    });
  });

  after(async () => {
    await server?.stop();
  });

  it('pings a client idle for idleSeconds, keeps it if it answers and closes it if it does not', async () => {
    const quiet = await rawLogin(server.ports.c2s, 'quiet', 'pw', 'r');
    const lively = await rawLogin(server.ports.c2s, 'lively', 'pw', 'r');
    // Nothing is sent: both are idle, so both are pinged within one scan after idleSeconds.
    const [quietPing, livelyPing] = await Promise.all([quiet.waitFor(PING, 15000), lively.waitFor(PING, 15000)]);
    expect(quietPing).to.include(`to='${quiet.jid}'`);
    const id = /id=['"]([^'"]+)['"]/.exec(livelyPing)![1]!;
    lively.send(`<iq type='result' id='${id}' to='localhost'/>`);
    expect(await streamErrorCondition(quiet, 5000)).to.equal('connection-timeout');
    await sleep(500);
    expect(lively.isClosed(), 'a client that answered stays connected').to.equal(false);
    lively.close();
  });
});
