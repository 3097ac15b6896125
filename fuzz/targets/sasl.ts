// SASL (RFC 4422) as the server runs it: SCRAM-SHA-1/-256 with and without channel binding (RFC 5802,
// RFC 7677), PLAIN (RFC 4616), XMPP's strict base64 (RFC 6120 §6.4.2) and SASLprep (RFC 4013).
// The first byte of the input picks the part, the rest is the message; for SCRAM a newline separates
// the client-first and the client-final message. Nothing may throw (a failure is an answer), no
// wrong password may succeed, and base64 and SASLprep results must be stable.
import { check, expectOnly, type FuzzTarget } from '../target.js';

const CONDITIONS = new Set(['aborted', 'account-disabled', 'credentials-expired', 'encryption-required', 'incorrect-encoding',
  'invalid-authzid', 'invalid-mechanism', 'malformed-request', 'mechanism-too-weak', 'not-authorized', 'temporary-auth-failure']);

export const saslTarget: FuzzTarget = {
  name: 'sasl',
  files: ['sasl', 'saslprep'],
  maxLen: 2048,
  dictionary: [
    'n,,', 'y,,', 'p=tls-exporter,,', 'p=tls-unique,,', 'n,a=admin,', 'n=', 'r=', 's=', 'i=', 'c=', 'p=', 'm=', 'e=', 'v=', 'x=',
    ',', '=2C', '=3D', '=', 'user', 'pencil', 'fyko+d2lbbFgONRv9qkxdawL', 'SRVNONCE', 'biws', 'eSws', 'cD10bHMtZXhwb3J0ZXIsLA==',
    '\n', '\u0000', '\u00A0', '\u00AD', '\u200B', '\u0627', '\u05D0', '\uFB01', '\u2168', '==', 'AAAA', 'QQ==', 'QUI=', '+/',
    'c=biws,r=fyko+d2lbbFgONRv9qkxdawLSRVNONCE,p=', 'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL',
  ],
  async setup(p) {
    const { ScramServer, PlainServer, decodeBase64Strict, deriveScramCredentials } = p.sasl;
    const { saslprep } = p.saslprep;
    const creds = {
      'SHA-1': deriveScramCredentials('pencil', 'SHA-1', 16, Buffer.from('salt-sha1')),
      'SHA-256': deriveScramCredentials('pencil', 'SHA-256', 16, Buffer.from('salt-sha256')),
    } as const;
    const cb = { type: 'tls-exporter', data: Buffer.from('channel-binding-data') };

    const valid = (step: Awaited<ReturnType<InstanceType<typeof ScramServer>['next']>>) => {
      check(step.kind === 'challenge' || step.kind === 'failure' || step.kind === 'success', 'unknown step');
      if (step.kind === 'failure') check(CONDITIONS.has(step.condition), `unknown SASL condition ${step.condition}`);
      check(step.kind !== 'success', 'authenticated without the password');
    };

    return async (data) => {
      if (data.length === 0) return;
      const mode = data[0]! % 5;
      const body = data.subarray(1);
      if (mode === 0 || mode === 1) {
        const hash = mode === 0 ? 'SHA-1' : 'SHA-256';
        const plus = (data[0]! & 0x10) !== 0;
        const server = new ScramServer({
          hash, plus, offeredPlus: (data[0]! & 0x20) !== 0, channelBinding: (data[0]! & 0x40) !== 0 ? cb : null,
          lookup: async (name) => (name === 'user' ? creds[hash] : null), nonce: 'SRVNONCE',
        });
        const nl = body.indexOf(10);
        const first = await server.start(nl === -1 ? body : body.subarray(0, nl));
        valid(first);
        if (nl === -1) return;
        const final = await server.next(body.subarray(nl + 1));
        valid(final);
        if (first.kind !== 'challenge') check(final.kind === 'failure', 'an exchange went on after a failure');
        const after = await server.next(Buffer.from('x'));
        check(after.kind === 'failure', 'an exchange went on after its end');
      } else if (mode === 2) {
        const server = new PlainServer({ verify: async (u, pw) => u === 'user' && pw === 'pencil' });
        const step = await server.start(body);
        check(step.kind !== 'failure' || CONDITIONS.has(step.condition), 'unknown SASL condition');
        if (step.kind === 'success') {
          check(step.username === 'user', `PLAIN succeeded for ${JSON.stringify(step.username)}`);
          check(body.toString('utf8').split('\0')[2]!.length > 0, 'PLAIN succeeded without a password');
        }
      } else if (mode === 3) {
        const text = body.toString('latin1');
        const decoded = decodeBase64Strict(text);
        if (decoded !== null && text !== '' && text !== '=') {
          check(decoded.toString('base64') === text, `base64 ${JSON.stringify(text)} is not canonical`);
        }
      } else {
        const text = body.toString('utf8');
        let once: string;
        try {
          once = saslprep(text);
        } catch (err) {
          expectOnly(err, Error);
          return;
        }
        let twice: string;
        try {
          twice = saslprep(once);
        } catch (err) {
          throw new Error(`saslprep(${JSON.stringify(text)}) = ${JSON.stringify(once)}, which saslprep refuses: ${(err as Error).message}`);
        }
        check(twice === once, `saslprep is not idempotent on ${JSON.stringify(text)}`);
      }
    };
  },
};
