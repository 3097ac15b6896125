// TLS material: the configured certificate, or a self-signed one generated on first start.
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import type { Config } from './config.js';
import type { Logger } from './log.js';

/** The certificate and key files in use (generated on first start when none are configured). */
export async function tlsFiles(config: Config, log: Logger): Promise<{ certFile: string; keyFile: string }> {
  let certFile = config.tls.cert;
  let keyFile = config.tls.key;
  if (!certFile || !keyFile) {
    const dir = path.resolve(config.dataDir, 'tls');
    certFile = path.join(dir, `${config.domain}.crt`);
    keyFile = path.join(dir, `${config.domain}.key`);
    if (!fs.existsSync(certFile) || !fs.existsSync(keyFile)) {
      fs.mkdirSync(dir, { recursive: true });
      const pems = await generate([{ name: 'commonName', value: config.domain }], {
        // ECDSA P-256: a handshake signs with it, and that costs a fraction of an RSA-2048 signature.
        keyType: 'ec', curve: 'P-256', algorithm: 'sha256',
        notAfterDate: new Date(Date.now() + 5 * 365 * 86400_000),
        extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: config.domain }, { type: 2, value: `*.${config.domain}` }] }],
      });
      fs.writeFileSync(keyFile, pems.private, { mode: 0o600 });
      fs.writeFileSync(certFile, pems.cert);
      log.info('generated a self-signed TLS certificate', { cert: certFile, domain: config.domain });
    }
  }
  return { certFile, keyFile };
}

/** The PEM certificate and key, for listeners that build their own context (HTTPS). */
export async function loadTlsMaterial(config: Config, log: Logger): Promise<{ cert: Buffer; key: Buffer; certFile: string }> {
  const { certFile, keyFile } = await tlsFiles(config, log);
  try {
    return { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), certFile };
  } catch (e) {
    throw new Error(`config: tls: cannot load ${certFile} / ${keyFile}: ${(e as Error).message}`);
  }
}

export async function loadTlsContext(config: Config, log: Logger): Promise<tls.SecureContext> {
  const { cert, key, certFile } = await loadTlsMaterial(config, log);
  try {
    return tls.createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
  } catch (e) {
    throw new Error(`config: tls: cannot load ${certFile}: ${(e as Error).message}`);
  }
}
