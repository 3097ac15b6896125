import { expect } from 'chai';
import { withConfig, errorOf } from './config-kit.js';
import { streamErrorElement } from '../protocol/errors.js';

describe('config: cluster.publicAddress (where a draining node sends its clients)', () => {
  it('defaults to none; takes host or host:port, and PERCH_PUBLIC_ADDRESS', async () => {
    expect((await withConfig('domain: example.com\n')).cluster).to.deep.equal({ publicAddress: null });
    expect((await withConfig('domain: example.com\ncluster:\n  publicAddress: chat1.example.com\n')).cluster.publicAddress).to.equal('chat1.example.com');
    expect((await withConfig('domain: example.com\ncluster:\n  publicAddress: "10.0.0.2:5222"\n')).cluster.publicAddress).to.equal('10.0.0.2:5222');
    expect((await withConfig("domain: example.com\ncluster:\n  publicAddress: '[2001:db8::1]:5222'\n")).cluster.publicAddress).to.equal('[2001:db8::1]:5222');
    expect((await withConfig('domain: example.com\n', { PERCH_PUBLIC_ADDRESS: 'node-b.example.com' })).cluster.publicAddress).to.equal('node-b.example.com');
  });

  it('refuses what is not an address', async () => {
    expect(await errorOf('domain: example.com\ncluster:\n  publicAddress: "xmpp://chat.example.com"\n')).to.contain('cluster.publicAddress');
    expect(await errorOf('domain: example.com\ncluster:\n  publicAddress: ""\n')).to.contain('cluster.publicAddress');
    expect(await errorOf('domain: example.com\ncluster:\n  other: 1\n')).to.contain('cluster.other');
  });

  it('see-other-host carries the address as its content (RFC 6120 §4.9.3.19)', () => {
    expect(streamErrorElement('see-other-host', 'draining', '10.0.0.2:5222').toString()).to.equal(
      "<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>10.0.0.2:5222</see-other-host>"
      + "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>draining</text></stream:error>");
  });
});
