// Export of this server's accounts as a XEP-0227 file (Portable Import/Export Format, urn:xmpp:pie:0),
// the form Prosody and ejabberd read and that importXep0227 reads back: per account its SCRAM keys
// (never a password), roster, pending subscription requests, vCard, private XML, offline messages and
// PEP nodes (XEP-0227 §2.10: configuration, affiliations and subscriptions in a pubsub#owner element,
// items in a pubsub one, oldest first). Streamed a page of accounts at a time into a temporary file
// renamed when complete.
import { createWriteStream } from 'node:fs';
import { rename, stat, unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { CONFIG_FIELDS, PUBSUB, type NodeConfig } from '../../protocol/pubsub.js';
import type { DataStores, StoredScram, UserRecord } from '../../storage/types.js';
import { createPubsubStore } from '../../storage/sql-pubsub.js';
import { createPubsubTransfer } from '../../storage/sql-transfer.js';
import type { Progress } from '../admin/command.js';

const PAGE = 500;

export interface Xep0227ExportOptions {
  file: string;
  domain: string;
  progress?: (p: Progress) => void;
}

export interface Xep0227ExportResult { file: string; users: number; pepNodes: number; pepItems: number; bytes: number }

export async function exportXep0227(stores: DataStores, opts: Xep0227ExportOptions): Promise<Xep0227ExportResult> {
  const counts = { users: 0, pepNodes: 0, pepItems: 0 };
  const tmp = `${opts.file}.partial-${process.pid}`;
  try {
    await pipeline(Readable.from(chunks(stores, opts, counts)), createWriteStream(tmp, { mode: 0o600 }));
    await rename(tmp, opts.file);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  return { file: opts.file, ...counts, bytes: (await stat(opts.file)).size };
}

async function* chunks(stores: DataStores, opts: Xep0227ExportOptions, counts: { users: number; pepNodes: number; pepItems: number }): AsyncGenerator<string> {
  yield `<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='${NS.pie}'>\n${new Element('host', { jid: opts.domain }).toString().replace(/\/>$/, '>')}\n`;
  let after: string | null = null;
  for (;;) {
    const users = await stores.transfer.users(after, PAGE);
    if (users.length === 0) break;
    after = users[users.length - 1]!.username;
    const out: string[] = [];
    for (const u of users) out.push(await userXml(stores, u, opts.domain, counts));
    counts.users += users.length;
    opts.progress?.({ phase: 'accounts', done: counts.users, unit: 'accounts' });
    yield out.join('');
  }
  yield '</host>\n</server-data>\n';
}

/** A stored XML text inside the file as it is: it was serialised by this server, so it is well-formed. */
const raw = (xml: string) => xml;

function scramXml(mechanism: string, s: StoredScram): string {
  const e = new Element('scram-credentials', { xmlns: NS.pieScram, mechanism });
  e.c('iter-count').t(String(s.iterations));
  e.c('salt').t(s.salt.toString('base64'));
  e.c('server-key').t(s.serverKey.toString('base64'));
  e.c('stored-key').t(s.storedKey.toString('base64'));
  return e.toString();
}

/** A node configuration as a submitted XEP-0004 form: the fields set, in the order the owner's form lists them. */
function configXml(config: NodeConfig): string {
  const x = new Element('x', { xmlns: NS.dataForms, type: 'submit' });
  x.c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t(PUBSUB.nodeConfig);
  const known = new Set(CONFIG_FIELDS.map((f) => f.var));
  const vars = [...CONFIG_FIELDS.map((f) => f.var), ...Object.keys(config).filter((k) => !known.has(k)).sort()];
  for (const v of vars) {
    const value = config[v];
    if (value === undefined) continue;
    const f = x.c('field', { var: v });
    for (const one of Array.isArray(value) ? value : [value]) f.c('value').t(one);
  }
  return x.toString();
}

async function userXml(stores: DataStores, u: UserRecord, domain: string, counts: { pepNodes: number; pepItems: number }): Promise<string> {
  const own = `${u.username}@${domain}`;
  const [roster, pending, data, offline] = await Promise.all([
    stores.roster.get(u.username), stores.roster.listPendingIn(u.username), stores.transfer.userData(u.username), stores.transfer.offline(u.username),
  ]);
  const parts: string[] = [];
  parts.push(scramXml('SCRAM-SHA-1', u.credentials.sha1));
  if (u.credentials.sha256) parts.push(scramXml('SCRAM-SHA-256', u.credentials.sha256));
  const q = new Element('query', { xmlns: NS.roster });
  for (const item of roster.items) {
    const attrs: Record<string, string> = { jid: item.jid, subscription: item.subscription };
    if (item.name !== null) attrs.name = item.name;
    if (item.askOut) attrs.ask = 'subscribe';
    if (item.approved) attrs.approved = 'true';
    const i = q.c('item', attrs);
    for (const g of item.groups) i.c('group').t(g);
  }
  parts.push(q.toString());
  for (const p of pending) parts.push(raw(p.stanza));
  const vcard = data.find((d) => d.kind === 'vcard' && d.key === 'current');
  if (vcard) parts.push(raw(vcard.value));
  const priv = data.filter((d) => d.kind === 'private');
  if (priv.length) parts.push(`<query xmlns='${NS.private}'>${priv.map((d) => raw(d.value)).join('')}</query>`);
  if (offline.length) parts.push(`<offline-messages>${offline.map((m) => raw(m.stanza)).join('')}</offline-messages>`);

  const pubsub = createPubsubStore(stores.db);
  const transfer = createPubsubTransfer(stores.db);
  const nodes = await pubsub.nodes(own);
  if (nodes.length) {
    const ownerParts: string[] = [];
    const itemParts: string[] = [];
    for (const n of nodes) {
      const [affiliations, subscriptions, items] = await Promise.all([
        pubsub.affiliations(own, n.node), pubsub.subscriptions(own, n.node), transfer.items(own, n.node),
      ]);
      ownerParts.push(`${new Element('configure', { node: n.node }).toString().replace(/\/>$/, '>')}${configXml(n.config)}</configure>`);
      if (affiliations.length) {
        const a = new Element('affiliations', { node: n.node });
        for (const x of affiliations) a.c('affiliation', { jid: x.jid, affiliation: x.affiliation });
        ownerParts.push(a.toString());
      }
      if (subscriptions.length) {
        const s = new Element('subscriptions', { node: n.node });
        for (const x of subscriptions) s.c('subscription', { jid: x.jid, subscription: x.state });
        ownerParts.push(s.toString());
      }
      const open = new Element('items', { node: n.node }).toString().replace(/\/>$/, '>');
      itemParts.push(`${open}${items.map((i) => `${new Element('item', { id: i.id }).toString().replace(/\/>$/, '>')}${raw(i.payload)}</item>`).join('')}</items>`);
      counts.pepNodes++;
      counts.pepItems += items.length;
    }
    parts.push(`<pubsub xmlns='${PUBSUB.owner}'>${ownerParts.join('')}</pubsub>`);
    parts.push(`<pubsub xmlns='${PUBSUB.main}'>${itemParts.join('')}</pubsub>`);
  }
  const user = new Element('user', { name: u.username }).toString().replace(/\/>$/, '>');
  return `${user}${parts.join('')}</user>\n`;
}
