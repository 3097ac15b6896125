// The client side of SCRAM (used by the self-test): the RFC's own exchange, and round trips with
// the server side for both hashes, a wrong password and a server that does not know the keys.
import { expect } from 'chai';
import { ScramClient, ScramServer, deriveScramCredentials, type ScramHash, type SaslStep } from '../protocol/sasl.js';

const b = (s: string) => Buffer.from(s, 'utf8');

function server(hash: ScramHash, password: string): ScramServer {
  const creds = deriveScramCredentials(password, hash, 4096);
  return new ScramServer({ hash, plus: false, offeredPlus: false, lookup: async (u) => (u === 'user' ? creds : null) });
}

async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  return expect.fail('expected a rejection');
}

function data(step: SaslStep): Buffer {
  if (step.kind === 'failure') expect.fail(`failure ${step.condition}`);
  return (step as { data: Buffer }).data;
}

describe('SCRAM client', () => {
  it('computes RFC 5802 §5\'s exchange (SHA-1) and checks the server signature', async () => {
    const c = new ScramClient('SHA-1', 'user', 'pencil', 'fyko+d2lbbFgONRv9qkxdawL');
    expect(c.first().toString()).to.equal('n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL');
    const final = await c.final(b('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096'));
    expect(final.toString()).to.equal('c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=');
    expect(c.verifyServer(b('v=rmF9pqV8S7suAoZWja4dJRkFsKQ='))).to.equal(true);
    expect(c.verifyServer(b('v=rmF9pqV8S7suAoZWja4dJRkFsKA='))).to.equal(false);
    expect(c.verifyServer(b('e=other-error'))).to.equal(false);
  });

  for (const hash of ['SHA-1', 'SHA-256'] as const) {
    it(`logs in against the server side (${hash}), and a wrong password does not`, async () => {
      const good = new ScramClient(hash, 'user', 'pässword');
      const srv = server(hash, 'pässword');
      const ok = await srv.next(await good.final(data(await srv.start(good.first()))));
      expect(ok.kind).to.equal('success');
      expect(good.verifyServer(data(ok))).to.equal(true);

      const bad = new ScramClient(hash, 'user', 'wrong');
      const srv2 = server(hash, 'pässword');
      const refused = await srv2.next(await bad.final(data(await srv2.start(bad.first()))));
      expect(refused.kind).to.equal('failure');
    });
  }

  it('refuses a server nonce that does not extend its own, and a server without the keys', async () => {
    const c = new ScramClient('SHA-256', 'user', 'pw', 'abc');
    expect(await rejection(c.final(b('r=xyz123,s=QSXCR+Q6sek8bf92,i=4096')))).to.match(/nonce/);
    expect(await rejection(new ScramClient('SHA-256', 'user', 'pw', 'abc').final(b('r=abc,s=QSXCR+Q6sek8bf92,i=4096')))).to.match(/nonce/);
    expect(await rejection(new ScramClient('SHA-256', 'user', 'pw', 'abc').final(b('r=abcd,s=QSXCR+Q6sek8bf92,i=x')))).to.match(/malformed/);
    // A server holding other keys cannot sign: the client notices.
    const impostor = server('SHA-256', 'other');
    const d = new ScramClient('SHA-256', 'user', 'pw');
    const step = await impostor.next(await d.final(data(await impostor.start(d.first()))));
    expect(step.kind).to.equal('failure');
    expect(d.verifyServer(b('v=' + Buffer.alloc(32).toString('base64')))).to.equal(false);
  });

  it('escapes , and = in the username', () => {
    expect(new ScramClient('SHA-1', 'a,b=c', 'pw', 'n0nce').first().toString()).to.equal('n,,n=a=2Cb=3Dc,r=n0nce');
  });
});
