import { expect } from 'chai';
import { withConfig, errorOf } from './config-kit.js';


describe('config: websocket', () => {
  it('defaults: HTTPS on 0.0.0.0:5443, no plain face, any origin, URL derived from the domain', async () => {
    const c = await withConfig('domain: example.com\n');
    expect(c.listen.websocket).to.deep.equal({ host: '0.0.0.0', port: 5443 });
    expect(c.listen.websocketPlain).to.equal(null);
    expect(c.websocket).to.deep.equal({ allowedOrigins: [], publicUrl: null });
  });

  it('PERCH_WEBSOCKET_PORT overrides the port; null turns the listener off', async () => {
    expect((await withConfig('domain: example.com\n', { PERCH_WEBSOCKET_PORT: '0' })).listen.websocket!.port).to.equal(0);
    expect((await withConfig('domain: example.com\nlisten:\n  websocket: null\n')).listen.websocket).to.equal(null);
  });

  it('takes plain HTTP on loopback only', async () => {
    const ok = await withConfig('domain: example.com\nlisten:\n  websocketPlain: { host: 127.0.0.1, port: 5280 }\n');
    expect(ok.listen.websocketPlain).to.deep.equal({ host: '127.0.0.1', port: 5280 });
    expect((await withConfig("domain: example.com\nlisten:\n  websocketPlain: { host: '::1', port: 5280 }\n")).listen.websocketPlain!.host).to.equal('::1');
    expect(await errorOf('domain: example.com\nlisten:\n  websocketPlain: { host: 0.0.0.0, port: 5280 }\n')).to.contain('listen.websocketPlain.host');
    expect(await errorOf('domain: example.com\nlisten:\n  websocketPlain: { host: 10.0.0.5, port: 5280 }\n')).to.contain('loopback');
  });

  it('checks origins and the public URL', async () => {
    const c = await withConfig('domain: example.com\nwebsocket:\n  allowedOrigins: [https://chat.example.com]\n  publicUrl: wss://chat.example.com/xmpp-websocket\n');
    expect(c.websocket.allowedOrigins).to.deep.equal(['https://chat.example.com']);
    expect(c.websocket.publicUrl).to.equal('wss://chat.example.com/xmpp-websocket');
    expect(await errorOf('domain: example.com\nwebsocket:\n  allowedOrigins: https://chat.example.com\n')).to.contain('websocket.allowedOrigins');
    expect(await errorOf('domain: example.com\nwebsocket:\n  allowedOrigins: [chat.example.com]\n')).to.contain('websocket.allowedOrigins.0');
    expect(await errorOf('domain: example.com\nwebsocket:\n  publicUrl: https://chat.example.com/ws\n')).to.contain('websocket.publicUrl');
  });
});
