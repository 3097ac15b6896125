// Import of a XEP-0227 file (Prosody's and ejabberd's export) as an admin operation: the file is on
// the server's machine, read by whichever process holds the data (the running server, or the CLI).
import path from 'node:path';
import { importXep0227, Xep0227Error, type Xep0227Report } from '../data/xep0227.js';
import { exportXep0227, type Xep0227ExportResult } from '../data/xep0227-export.js';
import { AdminError, isAdminActor, one, type AdminCommand, type Note } from './command.js';

function isOn(v: string): boolean {
  return ['on', 'true', 'yes', '1'].includes(v.trim().toLowerCase());
}

/** The report as a person reads it: counts per kind, then what was left out and why. */
export function xep0227Lines(r: Xep0227Report): string[] {
  const verb = r.dryRun ? 'would be' : '';
  const w = (s: string) => (verb ? `${s} (${verb} imported)` : s);
  const lines = [
    `hosts: ${r.hosts.map((h) => `${h.jid} (${h.users} accounts${h.imported ? ', imported' : ', skipped'})`).join(', ')}`,
    w(`accounts: ${r.users.created} new, ${r.users.overwritten.length} overwritten${r.users.overwritten.length ? ` (${r.users.overwritten.join(', ')})` : ''}`),
    `roster items: ${r.rosterItems}`,
    `pending subscription requests: ${r.pendingSubscriptions}`,
    `vCards: ${r.vcards}`,
    `private XML elements: ${r.privateXml}`,
    `offline messages: ${r.offlineMessages}`,
    `PEP nodes: ${r.pepNodes} (${r.pepItems} items)`,
  ];
  if (r.sha1Only.length) {
    lines.push(`SCRAM-SHA-1 keys only (they sign in with SCRAM-SHA-1 or PLAIN; SHA-256 keys come with the next PLAIN sign-in or password change): ${r.sha1Only.join(', ')}`);
  }
  for (const s of r.skipped) lines.push(`skipped ${s.count} ${s.kind}: ${s.reason} (e.g. ${s.examples.join(', ')})`);
  return lines;
}

export const importXep0227Command: AdminCommand<Xep0227Report> = {
  id: 'data-import-xep0227',
  title: 'Import a XEP-0227 File (Prosody, ejabberd)',
  instructions: 'Imports the accounts (with their passwords or SCRAM keys), rosters, vCards, private XML and offline messages of a XEP-0227 file on the server\'s machine. An account that exists is overwritten.',
  fields: [
    { name: 'file', type: 'text-single', label: 'Path of the XEP-0227 file', required: true, positional: 0 },
    { name: 'host', type: 'text-single', label: 'Host of the file to import as this server\'s domain (default: this domain)' },
    { name: 'dry-run', type: 'boolean', label: 'Check and count only', default: ['false'] },
  ],
  allowed: isAdminActor,
  async run(ctx, input) {
    const file = one(input, 'file').trim();
    const host = one(input, 'host').trim() || undefined;
    try {
      return await importXep0227(ctx, path.resolve(file), { dryRun: isOn(one(input, 'dry-run')), host });
    } catch (e) {
      if (e instanceof Xep0227Error) throw new AdminError(`${e.message}; nothing was imported`, 'not-acceptable');
      throw e;
    }
  },
  render(r) {
    const lines = xep0227Lines(r);
    const notes: Note[] = [{ type: 'info', text: (r.dryRun ? 'Dry run, nothing was changed.\n' : '') + lines.join('\n') }];
    return { notes, lines: [] };
  },
};

export const exportXep0227Command: AdminCommand<Xep0227ExportResult> = {
  id: 'data-export-xep0227',
  title: 'Export a XEP-0227 File',
  instructions: 'Writes this server\'s accounts (SCRAM keys, never passwords), rosters, pending requests, vCards, private XML, offline messages and PEP nodes as a XEP-0227 file on the server\'s machine.',
  fields: [
    { name: 'file', type: 'text-single', label: 'File to write (absolute path on the server\'s machine; .xml)', required: true, positional: 0 },
  ],
  allowed: isAdminActor,
  async run(ctx, input) {
    const file = one(input, 'file').trim();
    if (!path.isAbsolute(file)) throw new AdminError(`--file must be an absolute path on the server's machine, not ${file}`);
    try {
      return await exportXep0227(ctx.stores, { file, domain: ctx.domain, ...(ctx.progress ? { progress: ctx.progress } : {}) });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code) throw new AdminError(`cannot write ${file}: ${(e as Error).message}`, code === 'ENOENT' ? 'item-not-found' : 'not-allowed');
      throw e;
    }
  },
  render(r) {
    const text = `exported ${r.users} accounts with ${r.pepNodes} PEP nodes (${r.pepItems} items) to ${r.file} (${r.bytes} bytes)`;
    return { notes: [{ type: 'info', text }], lines: [text] };
  },
};
