// Software Version (XEP-0092) of the server. The operating system is not disclosed: <os/> is
// optional, and XEP-0092's security considerations note that it helps attackers.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import type { Module } from '../context.js';

/** The version in package.json, found by walking up from this file (source or compiled tree). */
function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'perch' && typeof pkg.version === 'string') return pkg.version;
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

export const versionModule: Module = {
  name: 'version',
  init(server) {
    const version = packageVersion();
    server.iq('host', NS.version, 'get', () => {
      const q = new Element('query', { xmlns: NS.version });
      q.c('name').t('Perch');
      q.c('version').t(version);
      return q;
    });
    server.disco.hostFeatures.add(NS.version);
  },
};
