// Uploaded files on the admin layer: list, usage per user and for the service, an expiry run now,
// and deleting one file. Admins only; they work on the data directory with or without a running server.
import { tryParseJid } from '../../protocol/jid.js';
import type { UploadFile, UploadUsage } from '../../storage/types.js';
import { blobStoreFor } from '../upload/runtime.js';
import { deleteUpload, runUploadExpiry, type ExpiryResult } from '../upload/expiry.js';
import { AdminError, isAdminActor, one, type AdminCommand, type AnyAdminCommand, type AdminInput, type FieldSpec } from './command.js';
import { intInput, table } from './chat-context.js';

function bareInput(input: AdminInput, name: string): string | undefined {
  const v = one(input, name);
  if (v === '') return undefined;
  const j = tryParseJid(v);
  if (!j || j.resource) throw new AdminError(`${name}: not a bare JID: ${v}`);
  return j.bareString();
}

/** A date, also when it crossed the admin socket as a string. */
const iso = (d: Date | string): string => new Date(d).toISOString();

const LIMIT: FieldSpec = { name: 'limit', type: 'text-single', label: 'At most this many rows', default: ['100'] };

export const uploadListCommand: AdminCommand<UploadFile[]> = {
  id: 'upload-list', title: 'List uploaded files',
  instructions: 'Newest first; filter by uploader, room or state (pending or stored).',
  fields: [
    { name: 'user', type: 'jid-single', label: 'Uploader' },
    { name: 'room', type: 'jid-single', label: 'Room' },
    { name: 'state', type: 'list-single', label: 'State', options: [{ value: 'pending' }, { value: 'stored' }] },
    { ...LIMIT },
  ],
  allowed: isAdminActor,
  async run(ctx, input) {
    const state = one(input, 'state');
    if (state !== '' && state !== 'pending' && state !== 'stored') throw new AdminError('state: pending or stored');
    const owner = bareInput(input, 'user');
    const room = bareInput(input, 'room');
    return ctx.stores.uploads.list({
      ...(owner ? { owner } : {}), ...(room ? { room } : {}), ...(state ? { state } : {}),
    }, intInput(input, 'limit') ?? 100);
  },
  render(files) {
    const lines = table(['ID', 'STATE', 'SIZE', 'OWNER', 'ROOM', 'TYPE', 'NAME', 'CREATED'],
      files.map((f) => [f.id, f.state + (f.referenced ? '*' : ''), String(f.size), f.owner, f.room ?? '-', f.contentType, f.name, iso(f.createdAt)]));
    return { notes: [], fields: [{ var: 'files', type: 'text-multi', label: 'Files', values: lines }], lines };
  },
};

export const uploadStatsCommand: AdminCommand<{ totals: { files: number; bytes: number; pending: number }; users: UploadUsage[] }> = {
  id: 'upload-stats', title: 'Upload usage',
  instructions: 'Stored files and bytes for the whole service and per user (largest first), with open slots.',
  fields: [{ ...LIMIT, default: ['50'] }],
  allowed: isAdminActor,
  async run(ctx, input) {
    const [totals, users] = await Promise.all([ctx.stores.uploads.totals(), ctx.stores.uploads.usage(intInput(input, 'limit') ?? 50)]);
    return { totals, users };
  },
  render({ totals, users }) {
    const lines = [
      `service: ${totals.files} files, ${totals.bytes} bytes, ${totals.pending} open slots`,
      ...table(['USER', 'FILES', 'BYTES', 'OPEN SLOTS'], users.map((u) => [u.owner, String(u.files), String(u.bytes), String(u.pending)])),
    ];
    return { notes: [], fields: [{ var: 'usage', type: 'text-multi', label: 'Usage', values: lines }], lines };
  },
};

export const uploadExpireCommand: AdminCommand<ExpiryResult> = {
  id: 'upload-expire', title: 'Expire uploads now',
  instructions: 'Deletes lapsed slots and files no archived message mentions after upload.expireUnreferencedDays.',
  fields: [],
  allowed: isAdminActor,
  run: (ctx) => runUploadExpiry(ctx.stores, blobStoreFor(ctx.config), ctx.config.upload),
  render: (r) => ({
    notes: [{ type: 'info', text: `deleted ${r.deleted.length} unreferenced files and ${r.lapsed} lapsed slots; ${r.referenced} files found referenced and kept` }],
  }),
};

export const uploadDeleteCommand: AdminCommand<{ id: string }> = {
  id: 'upload-delete', title: 'Delete an uploaded file',
  instructions: 'Its row and bytes; its links stop working.',
  fields: [{ name: 'id', type: 'text-single', label: 'File id', required: true, positional: 0 }],
  allowed: isAdminActor,
  async run(ctx, input) {
    const id = one(input, 'id');
    if (!(await deleteUpload(ctx.stores, blobStoreFor(ctx.config), id))) throw new AdminError(`no file ${id}`, 'item-not-found');
    return { id };
  },
  render: (r) => ({ notes: [{ type: 'info', text: `file ${r.id} deleted` }] }),
};

export const uploadCommands: readonly AnyAdminCommand[] = [uploadListCommand, uploadStatsCommand, uploadExpireCommand, uploadDeleteCommand];
