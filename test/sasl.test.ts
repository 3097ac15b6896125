import { expect } from 'chai';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import {
  PlainServer,
  ScramServer,
  decodeBase64Strict,
  deriveScramCredentials,
  deriveScramCredentialsAsync,
  scramMechanismName,
  verifyPasswordAgainstScram,
  type SaslStep,
  type ScramCredentials,
  type ScramHash,
  type ScramServerOptions,
} from '../protocol/sasl.js';

const b = (s: string) => Buffer.from(s, 'utf8');
const digestName = (hash: ScramHash) => (hash === 'SHA-1' ? 'sha1' : 'sha256');
const digestLength = (hash: ScramHash) => (hash === 'SHA-1' ? 20 : 32);

function expectChallenge(step: SaslStep): string {
  if (step.kind !== 'challenge') expect.fail(`expected a challenge, got ${JSON.stringify(step)}`);
  return step.data.toString('utf8');
}

function expectFailure(step: SaslStep, condition: string): void {
  expect(step.kind, JSON.stringify(step)).to.equal('failure');
  if (step.kind === 'failure') expect(step.condition).to.equal(condition);
}

/** Just enough of a SCRAM client to drive the server. */
class ScramClient {
  readonly bare: string;
  readonly first: string;
  expectedServerSignature = '';

  constructor(
    readonly hash: ScramHash,
    user: string,
    readonly password: string,
    readonly nonce = 'rOprNGfwEbeRWgbNEkqO',
    readonly gs2Header = 'n,,',
    readonly cbData = Buffer.alloc(0),
  ) {
    this.bare = `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${nonce}`;
    this.first = gs2Header + this.bare;
  }

  final(serverFirst: string, tamper?: (withoutProof: string) => string): string {
    const attrs = Object.fromEntries(serverFirst.split(',').map((a) => [a[0], a.slice(2)]));
    const name = digestName(this.hash);
    const salted = pbkdf2Sync(this.password, Buffer.from(attrs.s, 'base64'), Number(attrs.i), digestLength(this.hash), name);
    const clientKey = createHmac(name, salted).update('Client Key').digest();
    const storedKey = createHash(name).update(clientKey).digest();
    const cb = Buffer.concat([b(this.gs2Header), this.cbData]).toString('base64');
    let withoutProof = `c=${cb},r=${attrs.r}`;
    if (tamper) withoutProof = tamper(withoutProof);
    const authMessage = `${this.bare},${serverFirst},${withoutProof}`;
    const signature = createHmac(name, storedKey).update(authMessage).digest();
    const proof = clientKey.map((x, i) => x ^ signature[i]);
    const serverKey = createHmac(name, salted).update('Server Key').digest();
    this.expectedServerSignature = createHmac(name, serverKey).update(authMessage).digest('base64');
    return `${withoutProof},p=${Buffer.from(proof).toString('base64')}`;
  }
}

function server(hash: ScramHash, users: Record<string, ScramCredentials>, extra: Partial<ScramServerOptions> = {}) {
  return new ScramServer({
    hash,
    plus: false,
    offeredPlus: false,
    lookup: async (u) => users[u] ?? null,
    ...extra,
  });
}

async function exchange(srv: ScramServer, client: ScramClient): Promise<SaslStep> {
  const serverFirst = expectChallenge(await srv.start(b(client.first)));
  return srv.next(b(client.final(serverFirst)));
}

describe('decodeBase64Strict', () => {
  it('decodes canonical base64', () => {
    expect(decodeBase64Strict('Zm9vYmFy')?.toString()).to.equal('foobar');
    expect(decodeBase64Strict('Zm9vYg==')?.toString()).to.equal('foob');
    expect(decodeBase64Strict('Zm9vYmE=')?.toString()).to.equal('fooba');
    expect(decodeBase64Strict('+/+/')).to.deep.equal(Buffer.from([0xfb, 0xff, 0xbf]));
  });

  it("treats '' and '=' as empty", () => {
    expect(decodeBase64Strict('')).to.deep.equal(Buffer.alloc(0));
    expect(decodeBase64Strict('=')).to.deep.equal(Buffer.alloc(0));
  });

  it('rejects everything else', () => {
    for (const s of ['Zm9vYg', 'Zm9vYg=', 'Zm9vYg===', 'Zm9v Yg==', 'Zm9v\nYmFy', 'Zm9v-_==', 'Zm9vYh==', '==', 'Zm9v!mFy', 'Zg==Zg==']) {
      expect(decodeBase64Strict(s), JSON.stringify(s)).to.equal(null);
    }
  });
});

describe('scramMechanismName', () => {
  it('names the four variants', () => {
    expect(scramMechanismName('SHA-1', false)).to.equal('SCRAM-SHA-1');
    expect(scramMechanismName('SHA-1', true)).to.equal('SCRAM-SHA-1-PLUS');
    expect(scramMechanismName('SHA-256', false)).to.equal('SCRAM-SHA-256');
    expect(scramMechanismName('SHA-256', true)).to.equal('SCRAM-SHA-256-PLUS');
  });
});

describe('SCRAM credentials', () => {
  it('derive the keys of the RFC 5802 example', async () => {
    const salt = Buffer.from('QSXCR+Q6sek8bf92', 'base64');
    const creds = deriveScramCredentials('pencil', 'SHA-1', 4096, salt);
    expect(creds.storedKey.toString('base64')).to.equal('6dlGYMOdZcOPutkcNY8U2g7vK9Y=');
    expect(creds.serverKey.toString('base64')).to.equal('D+CSWLOshSulAsxiupA+qs2/fTE=');
    expect(await deriveScramCredentialsAsync('pencil', 'SHA-1', 4096, salt)).to.deep.equal(creds);
  });

  it('derive the keys of the RFC 7677 example', () => {
    const creds = deriveScramCredentials('pencil', 'SHA-256', 4096, Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));
    expect(creds.storedKey.toString('base64')).to.equal('WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=');
    expect(creds.serverKey.toString('base64')).to.equal('wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=');
  });

  it('use a fresh salt by default and apply saslprep', () => {
    const a = deriveScramCredentials('I\u00ADX', 'SHA-256', 1);
    const c = deriveScramCredentials('IX', 'SHA-256', 1, a.salt);
    expect(a.salt).to.have.length(16);
    expect(a.storedKey).to.deep.equal(c.storedKey);
    expect(deriveScramCredentials('x', 'SHA-256', 1).salt).not.to.deep.equal(a.salt);
  });

  it('verify a clear-text password', async () => {
    const creds = deriveScramCredentials('pencil', 'SHA-256', 16);
    expect(await verifyPasswordAgainstScram('pencil', creds)).to.equal(true);
    expect(await verifyPasswordAgainstScram('pen', creds)).to.equal(false);
    expect(await verifyPasswordAgainstScram('\u0007', creds)).to.equal(false);
  });
});

describe('ScramServer', () => {
  it('reproduces the RFC 5802 §5 exchange', async () => {
    const creds = deriveScramCredentials('pencil', 'SHA-1', 4096, Buffer.from('QSXCR+Q6sek8bf92', 'base64'));
    const srv = server('SHA-1', { user: creds }, { nonce: '3rfcNHYJY1ZVvWVs7j' });
    const first = expectChallenge(await srv.start(b('n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL')));
    expect(first).to.equal('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096');
    const step = await srv.next(
      b('c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts='),
    );
    expect(step).to.deep.equal({
      kind: 'success',
      data: b('v=rmF9pqV8S7suAoZWja4dJRkFsKQ='),
      username: 'user',
      authzid: '',
    });
  });

  it('reproduces the RFC 7677 §3 exchange', async () => {
    const creds = deriveScramCredentials('pencil', 'SHA-256', 4096, Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));
    const srv = server('SHA-256', { user: creds }, { nonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0' });
    const first = expectChallenge(await srv.start(b('n,,n=user,r=rOprNGfwEbeRWgbNEkqO')));
    expect(first).to.equal('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096');
    const step = await srv.next(
      b('c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ='),
    );
    expect(step.kind).to.equal('success');
    if (step.kind === 'success') {
      expect(step.data?.toString()).to.equal('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
    }
  });

  for (const hash of ['SHA-1', 'SHA-256'] as const) {
    it(`completes an exchange with a client (${hash})`, async () => {
      const users = { 'al,i=ce': deriveScramCredentials('s3cret', hash, 64) };
      const client = new ScramClient(hash, 'al,i=ce', 's3cret', 'abc', 'n,a=x=2Cy=3Dz,');
      const srv = server(hash, users);
      const first = expectChallenge(await srv.start(b(client.first)));
      expect(first).to.match(/^r=abc[A-Za-z0-9+/=]{32},s=[^,]+,i=64$/);
      const step = await srv.next(b(client.final(first)));
      expect(step).to.deep.equal({
        kind: 'success',
        data: b(`v=${client.expectedServerSignature}`),
        username: 'al,i=ce',
        authzid: 'x,y=z',
      });
      expectFailure(await srv.next(b('')), 'malformed-request');
    });
  }

  it('waits for the client-first message when there is no initial response', async () => {
    const srv = server('SHA-256', { u: deriveScramCredentials('p', 'SHA-256', 8) });
    const client = new ScramClient('SHA-256', 'u', 'p');
    expect(expectChallenge(await srv.start(Buffer.alloc(0)))).to.equal('');
    const first = expectChallenge(await srv.next(b(client.first)));
    expect((await srv.next(b(client.final(first)))).kind).to.equal('success');
  });

  it('applies saslprep to the username', async () => {
    const srv = server('SHA-256', { IX: deriveScramCredentials('p', 'SHA-256', 8) });
    const step = await exchange(srv, new ScramClient('SHA-256', 'I\u00ADX', 'p'));
    expect(step.kind === 'success' && step.username).to.equal('IX');
  });

  it('refuses a wrong password', async () => {
    const srv = server('SHA-256', { user: deriveScramCredentials('pencil', 'SHA-256', 8) });
    expectFailure(await exchange(srv, new ScramClient('SHA-256', 'user', 'pen')), 'not-authorized');
  });

  it('challenges an unknown user like a known one, then refuses', async () => {
    const users = { known: deriveScramCredentials('p', 'SHA-256') };
    const first = expectChallenge(await server('SHA-256', users).start(b('n,,n=ghost,r=abc')));
    const again = expectChallenge(await server('SHA-256', users).start(b('n,,n=ghost,r=abc')));
    const salt = (m: string) => m.split(',')[1];
    expect(first).to.match(/^r=abc[^,]+,s=[A-Za-z0-9+/]{22}==,i=4096$/);
    expect(salt(again)).to.equal(salt(first));
    const other = expectChallenge(await server('SHA-256', users).start(b('n,,n=phantom,r=abc')));
    expect(salt(other)).not.to.equal(salt(first));

    // Even a client that somehow got the proof right for the fake salt gets nowhere.
    expectFailure(await exchange(server('SHA-256', users), new ScramClient('SHA-256', 'ghost', 'p')), 'not-authorized');
  });

  it('treats credentials for another hash as unknown', async () => {
    const srv = server('SHA-256', { u: deriveScramCredentials('p', 'SHA-1', 8) });
    expectFailure(await exchange(srv, new ScramClient('SHA-256', 'u', 'p')), 'not-authorized');
  });

  it('reports a failing lookup as a temporary failure', async () => {
    const srv = new ScramServer({
      hash: 'SHA-256', plus: false, offeredPlus: false,
      lookup: async () => { throw new Error('database down'); },
    });
    expectFailure(await srv.start(b('n,,n=u,r=abc')), 'temporary-auth-failure');
  });

  it('refuses malformed client-first messages', async () => {
    for (const msg of [
      'x,,n=user,r=abc',
      'n,n=user,r=abc',
      'n,,',
      'n,,r=abc,n=user',
      'n,,n=user',
      'n,,n=,r=abc',
      'n,,n=us=2Ber,r=abc',
      'n,,n=user,r=',
      'n,,n=user,r=a,b',
      'n,,m=ext,n=user,r=abc',
      'n,a=,n=user,r=abc',
      'n,b=x,n=user,r=abc',
      'p=tls-exporter,,n=user,r=abc',
    ]) {
      const step = await server('SHA-256', {}).start(b(msg));
      expect(step.kind === 'failure' && step.condition, msg).to.equal('malformed-request');
    }
  });

  it('refuses messages that are not UTF-8 or contain NUL', async () => {
    expectFailure(await server('SHA-256', {}).start(Buffer.from([0x6e, 0x2c, 0x2c, 0xff])), 'malformed-request');
    expectFailure(await server('SHA-256', {}).start(b('n,,n=u\0,r=abc')), 'malformed-request');
  });

  it("refuses 'y' when PLUS was offered, accepts it otherwise", async () => {
    expectFailure(await server('SHA-256', {}, { offeredPlus: true }).start(b('y,,n=u,r=abc')), 'not-authorized');
    expectChallenge(await server('SHA-256', {}).start(b('y,,n=u,r=abc')));
  });

  it('refuses a tampered nonce or channel binding in client-final', async () => {
    const users = { u: deriveScramCredentials('p', 'SHA-256', 8) };
    const nonce = new ScramClient('SHA-256', 'u', 'p');
    let srv = server('SHA-256', users);
    let first = expectChallenge(await srv.start(b(nonce.first)));
    expectFailure(await srv.next(b(nonce.final(first, (m) => m.replace('r=rOpr', 'r=xOpr')))), 'not-authorized');

    const cb = new ScramClient('SHA-256', 'u', 'p');
    srv = server('SHA-256', users);
    first = expectChallenge(await srv.start(b(cb.first)));
    expectFailure(await srv.next(b(cb.final(first, (m) => m.replace('c=biws', 'c=eSws')))), 'not-authorized');

    srv = server('SHA-256', users);
    first = expectChallenge(await srv.start(b(cb.first)));
    expectFailure(await srv.next(b('c=biws,r=x')), 'malformed-request');
  });

  describe('-PLUS', () => {
    const cbData = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
    const users = { u: deriveScramCredentials('p', 'SHA-256', 8) };
    const plusServer = () =>
      server('SHA-256', users, { plus: true, offeredPlus: true, channelBinding: { type: 'tls-exporter', data: cbData } });

    it('succeeds when the channel binding data matches', async () => {
      const client = new ScramClient('SHA-256', 'u', 'p', 'abc', 'p=tls-exporter,,', cbData);
      expect((await exchange(plusServer(), client)).kind).to.equal('success');
    });

    it('fails when the channel binding data differs', async () => {
      const client = new ScramClient('SHA-256', 'u', 'p', 'abc', 'p=tls-exporter,,', Buffer.alloc(32));
      expectFailure(await exchange(plusServer(), client), 'not-authorized');
    });

    it('fails for another channel binding type', async () => {
      expectFailure(await plusServer().start(b('p=tls-unique,,n=u,r=abc')), 'not-authorized');
    });

    it('requires p=', async () => {
      expectFailure(await plusServer().start(b('n,,n=u,r=abc')), 'malformed-request');
      expectFailure(await plusServer().start(b('y,,n=u,r=abc')), 'malformed-request');
    });
  });
});

describe('PlainServer', () => {
  const plain = () =>
    new PlainServer({ verify: async (u, p) => (u === 'juliet' && p === 'r0m30') || (u === 'IX' && p === 'IX') });

  it('accepts good credentials', async () => {
    expect(await plain().start(b('\0juliet\0r0m30'))).to.deep.equal({
      kind: 'success', data: null, username: 'juliet', authzid: '',
    });
    const step = await plain().start(b('juliet@example.com\0juliet\0r0m30'));
    expect(step.kind === 'success' && step.authzid).to.equal('juliet@example.com');
  });

  it('applies saslprep to both username and password', async () => {
    expect((await plain().start(b('\0I\u00ADX\0\u2168'))).kind).to.equal('success');
  });

  it('refuses bad credentials', async () => {
    for (const msg of ['\0juliet\0wrong', '\0romeo\0r0m30', '\0\0r0m30', '\0juliet\0', '\0juliet\0r0m30\u0007']) {
      const step = await plain().start(b(msg));
      expect(step.kind === 'failure' && step.condition, JSON.stringify(msg)).to.equal('not-authorized');
    }
  });

  it('refuses malformed messages', async () => {
    for (const msg of ['juliet', 'juliet\0r0m30', '\0juliet\0r0m30\0', '\0\0\0']) {
      const step = await plain().start(b(msg));
      expect(step.kind === 'failure' && step.condition, JSON.stringify(msg)).to.equal('malformed-request');
    }
    expectFailure(await plain().start(Buffer.from([0, 0x61, 0, 0xc3])), 'malformed-request');
  });

  it('waits for the response when there is no initial response', async () => {
    const srv = plain();
    expect(await srv.start(Buffer.alloc(0))).to.deep.equal({ kind: 'challenge', data: Buffer.alloc(0) });
    expect((await srv.next(b('\0juliet\0r0m30'))).kind).to.equal('success');
    expectFailure(await srv.next(b('\0juliet\0r0m30')), 'malformed-request');
  });

  it('reports a failing verifier as a temporary failure', async () => {
    const srv = new PlainServer({ verify: async () => { throw new Error('down'); } });
    expectFailure(await srv.start(b('\0a\0b')), 'temporary-auth-failure');
  });

  it('can check against stored SCRAM keys', async () => {
    const creds = deriveScramCredentials('r0m30', 'SHA-256', 16);
    const srv = new PlainServer({ verify: (u, p) => verifyPasswordAgainstScram(p, creds) });
    expect((await srv.start(b('\0juliet\0r0m30'))).kind).to.equal('success');
  });
});
