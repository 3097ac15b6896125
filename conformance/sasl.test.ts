// SASL (RFC 6120 §6, RFC 5802, RFC 7677, RFC 4616) over real sockets, with a minimal SCRAM client.
import { expect } from 'chai';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import type tls from 'node:tls';
import {
  startServer, connectRaw, openStream, openSecureStream, login, randomName,
  type RunningServer, type RawConnection,
} from './harness.js';

const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const OUTCOME = /<(success|failure|challenge)[^>]*?(\/>|>([\s\S]*?)<\/\1>)/;

async function saslOutcome(raw: RawConnection): Promise<{ kind: string; body: string }> {
  const m = OUTCOME.exec(await raw.waitFor(OUTCOME))!;
  return { kind: m[1]!, body: m[3] ?? '' };
}

function failureCondition(body: string): string {
  return /<([a-z-]+)\/>/.exec(body)?.[1] ?? body;
}

type Hash = 'SHA-1' | 'SHA-256';
const ALG = { 'SHA-1': { name: 'sha1', len: 20 }, 'SHA-256': { name: 'sha256', len: 32 } } as const;

/** Runs a SCRAM exchange; returns the outcome after the final message. */
async function scramLogin(raw: RawConnection, hash: Hash, user: string, password: string,
  cb: { type: string; data: Buffer } | null = null): Promise<{ kind: string; body: string; serverVerified: boolean }> {
  const { name, len } = ALG[hash];
  const gs2 = cb ? `p=${cb.type},,` : 'n,,';
  const nonce = randomBytes(18).toString('base64');
  const clientFirstBare = `n=${user},r=${nonce}`;
  raw.send(`<auth xmlns='${SASL}' mechanism='SCRAM-${hash}${cb ? '-PLUS' : ''}'>${b64(gs2 + clientFirstBare)}</auth>`);
  const first = await saslOutcome(raw);
  if (first.kind !== 'challenge') return { ...first, serverVerified: false };
  const serverFirst = Buffer.from(first.body, 'base64').toString('utf8');
  const attrs = Object.fromEntries(serverFirst.split(',').map((a) => [a[0], a.slice(2)]));
  expect(attrs.r!.startsWith(nonce), 'server nonce extends the client nonce').to.equal(true);
  const salted = pbkdf2Sync(password, Buffer.from(attrs.s!, 'base64'), Number(attrs.i), len, name);
  const clientKey = createHmac(name, salted).update('Client Key').digest();
  const storedKey = createHash(name).update(clientKey).digest();
  const cbInput = Buffer.concat([Buffer.from(gs2), cb?.data ?? Buffer.alloc(0)]);
  const finalWithoutProof = `c=${cbInput.toString('base64')},r=${attrs.r}`;
  const authMessage = `${clientFirstBare},${serverFirst},${finalWithoutProof}`;
  const signature = createHmac(name, storedKey).update(authMessage).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
  raw.send(`<response xmlns='${SASL}'>${b64(`${finalWithoutProof},p=${proof.toString('base64')}`)}</response>`);
  const outcome = await saslOutcome(raw);
  let serverVerified = false;
  if (outcome.kind === 'success') {
    const serverKey = createHmac(name, salted).update('Server Key').digest();
    const expected = `v=${createHmac(name, serverKey).update(authMessage).digest('base64')}`;
    serverVerified = Buffer.from(outcome.body, 'base64').toString('utf8') === expected;
  }
  return { ...outcome, serverVerified };
}

describe('conformance: SASL', function () {
  this.timeout(30000);
  let server: RunningServer;
  const user = randomName('sa');
  const throttled = randomName('th');
  const disabled = randomName('di');
  const ACCOUNT_LIMIT = 3;

  before(async function () {
    this.timeout(60000);
    server = await startServer({
      users: { [user]: 'pässword', [throttled]: 'right', [disabled]: 'pw' },
      disabledUsers: [disabled],
      configYaml: `limits: { authFailuresPerAccount: ${ACCOUNT_LIMIT}, authFailuresPerIp: 1000 }\n`,
    });
  });
  after(async () => {
    await server?.stop();
  });

  async function secure(): Promise<RawConnection> {
    const raw = await connectRaw(server.ports.c2s);
    await openSecureStream(raw);
    return raw;
  }

  for (const hash of ['SHA-1', 'SHA-256'] as const) {
    it(`logs in with SCRAM-${hash} and proves the server knows the password`, async () => {
      const raw = await secure();
      const r = await scramLogin(raw, hash, user, 'pässword');
      expect(r.kind).to.equal('success');
      expect(r.serverVerified, 'server signature').to.equal(true);
      const features = await openStream(raw);
      expect(features).to.include('urn:ietf:params:xml:ns:xmpp-bind');
      raw.close();
    });

    it(`logs in with SCRAM-${hash}-PLUS using the TLS channel binding the server offers`, async () => {
      const raw = await connectRaw(server.ports.c2s);
      const features = await openSecureStream(raw);
      const type = /<channel-binding type=['"]([^'"]+)['"]/.exec(features)?.[1];
      expect(type, 'XEP-0440 channel binding types advertised').to.be.a('string');
      const s = raw.socket as tls.TLSSocket;
      let data: Buffer;
      if (type === 'tls-exporter') data = s.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
      else {
        const cert = s.getPeerCertificate();
        data = createHash('sha256').update(cert.raw).digest();
      }
      const r = await scramLogin(raw, hash, user, 'pässword', { type: type!, data });
      expect(r.kind).to.equal('success');
      expect(r.serverVerified).to.equal(true);
      raw.close();
    });
  }

  it('logs in with PLAIN after STARTTLS', async () => {
    const raw = await secure();
    raw.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${b64(`\0${user}\0pässword`)}</auth>`);
    expect((await saslOutcome(raw)).kind).to.equal('success');
    raw.close();
  });

  it('accepts PLAIN without an initial response (empty challenge first)', async () => {
    const raw = await secure();
    raw.send(`<auth xmlns='${SASL}' mechanism='PLAIN'/>`);
    const c = await saslOutcome(raw);
    expect(c.kind).to.equal('challenge');
    raw.send(`<response xmlns='${SASL}'>${b64(`\0${user}\0pässword`)}</response>`);
    expect((await saslOutcome(raw)).kind).to.equal('success');
    raw.close();
  });

  it('refuses a wrong password with <not-authorized/>, and the stream stays usable', async () => {
    const other = randomName('wp');
    const raw = await secure();
    raw.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${b64(`\0${user}\0wrong`)}</auth>`);
    const r = await saslOutcome(raw);
    expect(r.kind).to.equal('failure');
    expect(failureCondition(r.body)).to.equal('not-authorized');
    const s = await scramLogin(raw, 'SHA-256', other, 'x');
    expect(s.kind).to.equal('failure');
    expect(failureCondition(s.body), 'unknown user looks like a wrong password').to.equal('not-authorized');
    const ok = await scramLogin(raw, 'SHA-256', user, 'pässword');
    expect(ok.kind).to.equal('success');
    raw.close();
  });

  it('refuses an unknown mechanism with <invalid-mechanism/>', async () => {
    const raw = await secure();
    raw.send(`<auth xmlns='${SASL}' mechanism='X-UNKNOWN'>${b64('x')}</auth>`);
    const r = await saslOutcome(raw);
    expect(r.kind).to.equal('failure');
    expect(failureCondition(r.body)).to.equal('invalid-mechanism');
    raw.close();
  });

  it('refuses bad base64 with <incorrect-encoding/>', async () => {
    const raw = await secure();
    raw.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>not*base64!</auth>`);
    const r = await saslOutcome(raw);
    expect(r.kind).to.equal('failure');
    expect(failureCondition(r.body)).to.equal('incorrect-encoding');
    raw.close();
  });

  it('answers <abort/> with <aborted/>', async () => {
    const raw = await secure();
    raw.send(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-256'>${b64(`n,,n=${user},r=abcdefgh`)}</auth>`);
    expect((await saslOutcome(raw)).kind).to.equal('challenge');
    raw.send(`<abort xmlns='${SASL}'/>`);
    const r = await saslOutcome(raw);
    expect(r.kind).to.equal('failure');
    expect(failureCondition(r.body)).to.equal('aborted');
    raw.close();
  });

  it('refuses authentication before STARTTLS with <encryption-required/>', async () => {
    const raw = await connectRaw(server.ports.c2s);
    await openStream(raw);
    raw.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${b64(`\0${user}\0pässword`)}</auth>`);
    const r = await saslOutcome(raw);
    expect(r.kind).to.equal('failure');
    expect(failureCondition(r.body)).to.equal('encryption-required');
    raw.close();
  });

  it('answers a second <auth/> after success with <aborted/>', async () => {
    const raw = await secure();
    raw.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${b64(`\0${user}\0pässword`)}</auth>`);
    expect((await saslOutcome(raw)).kind).to.equal('success');
    await openStream(raw);
    raw.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${b64(`\0${user}\0pässword`)}</auth>`);
    const r = await saslOutcome(raw);
    expect(r.kind).to.equal('failure');
    expect(failureCondition(r.body)).to.equal('aborted');
    raw.close();
  });

  it(`throttles an account after ${ACCOUNT_LIMIT} failures: <temporary-auth-failure/> even with the right password`, async () => {
    for (let i = 0; i < ACCOUNT_LIMIT; i++) {
      const raw = await secure();
      const r = i % 2 ? await scramLogin(raw, 'SHA-1', throttled, 'wrong') : await (async () => {
        raw.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${b64(`\0${throttled}\0wrong`)}</auth>`);
        return saslOutcome(raw);
      })();
      expect(failureCondition(r.body)).to.equal('not-authorized');
      raw.close();
    }
    const raw = await secure();
    raw.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${b64(`\0${throttled}\0right`)}</auth>`);
    const r = await saslOutcome(raw);
    expect(r.kind).to.equal('failure');
    expect(failureCondition(r.body)).to.equal('temporary-auth-failure');
    raw.close();
    // Other accounts are not affected.
    const c = await login(server.ports.c2s, user, 'pässword');
    await c.stop();
  });

  it('refuses a disabled account with <account-disabled/>', async () => {
    const raw = await secure();
    raw.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${b64(`\0${disabled}\0pw`)}</auth>`);
    const r = await saslOutcome(raw);
    expect(r.kind).to.equal('failure');
    expect(failureCondition(r.body)).to.equal('account-disabled');
    raw.close();
  });
});
