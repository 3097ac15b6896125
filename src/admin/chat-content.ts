// Content administration on the admin layer: clear a room's archive before a date, remove or replace
// the messages a filter matches (admins), and list the users eligible for a category or a room (admins;
// a room's managers for their room). The operations are in src/pchat/content-ops.ts.
import {
  DEFAULT_REPLACEMENT, clearRoom, eligiblePrincipals, parseAdminDate, removeMessages,
  type ClearResult, type ContentFilter, type EligibleResult, type RemoveResult,
} from '../pchat/content-ops.js';
import { AdminError, isAdminActor, one, type AdminCommand, type AnyAdminCommand, type FieldSpec } from './command.js';
import { SERVICE_FIELD, adminsOrServiceAccounts, boolField, boolInput, chatActor, chatContext, intInput, op, optionalInput, serviceInput, table } from './chat-context.js';

const ROOM: FieldSpec = { name: 'room', type: 'text-single', label: 'Room: the localpart of its JID (or the full JID when there are several services)', required: true, positional: 0 };

export const roomClearCommand: AdminCommand<ClearResult> = {
  id: 'room-clear', title: "Clear a Room's Chat History",
  instructions: "Deletes the room's archived messages on or before a date (a bare date: the end of that day, UTC), oldest first. Occupants' join history and archive queries no longer show them.",
  fields: [ROOM, { name: 'before', type: 'text-single', label: 'Delete messages on or before this XEP-0082 date (2026-03-31) or date-time (2026-03-31T12:00:00Z)', required: true }, SERVICE_FIELD],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => {
    const c = chatContext(ctx);
    const before = parseAdminDate(one(input, 'before'), 'end', '--before');
    return clearRoom(c, chatActor(ctx.actor), serviceInput(ctx, input), one(input, 'room'), before, ctx.progress);
  }),
  render: (r) => ({ notes: [{ type: 'info', text: `${r.removed} message(s) of ${r.room} on or before ${r.before} deleted` }] }),
};

export const roomRemoveMessagesCommand: AdminCommand<RemoveResult> = {
  id: 'room-remove-messages', title: 'Remove or Replace Chat Messages',
  instructions: `Replaces (by default, with "${DEFAULT_REPLACEMENT}" unless --replace gives the text) or removes (--remove) every message of the room the filters match; at least one filter. Occupants see each as a moderation (XEP-0425) by the room.`,
  fields: [
    ROOM,
    { name: 'author', type: 'jid-multi', label: "Only messages by these users (their real bare JIDs; repeatable)" },
    { name: 'start', type: 'text-single', label: 'Only messages on or after this date or date-time (a bare date: from its start, UTC)' },
    { name: 'end', type: 'text-single', label: 'Only messages on or before this date or date-time (a bare date: to its end, UTC)' },
    { name: 'filter', type: 'text-single', label: 'Only messages whose text matches these keywords' },
    { name: 'match', type: 'list-single', label: 'How the keywords match', options: [{ value: 'all', label: 'every word' }, { value: 'any', label: 'any word' }, { value: 'exact', label: 'the exact text' }], default: ['all'] },
    boolField('case-sensitive', 'Keywords match in this case only'),
    { name: 'replace', type: 'text-single', label: `Replacement text (default: ${DEFAULT_REPLACEMENT})` },
    boolField('remove', 'Remove the messages instead of replacing them'),
    boolField('dry-run', 'Only count the messages matched'),
    SERVICE_FIELD,
  ],
  allowed: isAdminActor,
  run: (ctx, input) => op(() => {
    const f: ContentFilter = {};
    const authors = (input.author ?? []).flatMap((a) => a.split(/[\s,]+/)).filter((a) => a !== '');
    if (authors.length > 0) f.authors = authors;
    const start = optionalInput(input, 'start')?.trim();
    if (start) f.start = parseAdminDate(start, 'start', '--start');
    const end = optionalInput(input, 'end')?.trim();
    if (end) f.end = parseAdminDate(end, 'end', '--end');
    const text = optionalInput(input, 'filter');
    const mode = (one(input, 'match') || 'all').toLowerCase();
    if (!['all', 'any', 'exact'].includes(mode)) throw new AdminError(`--match takes all, any or exact, not ${mode}`);
    if (text !== undefined && text.trim() !== '') f.match = { text, mode: mode as 'all' | 'any' | 'exact', caseSensitive: boolInput(input, 'case-sensitive') ?? false };
    const remove = boolInput(input, 'remove') ?? false;
    const replace = optionalInput(input, 'replace');
    if (remove && replace !== undefined) throw new AdminError('--remove and --replace exclude each other');
    return removeMessages(chatContext(ctx), chatActor(ctx.actor), serviceInput(ctx, input), one(input, 'room'), f, {
      ...(remove ? {} : { replacement: replace ?? DEFAULT_REPLACEMENT }),
      dryRun: boolInput(input, 'dry-run') ?? false,
    }, ctx.progress);
  }),
  render: (r) => ({
    notes: [{
      type: 'info',
      text: r.dryRun
        ? `${r.matched} message(s) of ${r.room} match (dry run: nothing changed)`
        : `${r.matched} message(s) of ${r.room} matched, ${r.changed} ${r.mode === 'remove' ? 'removed' : 'replaced'}`,
    }],
  }),
};

export const principalEligibleCommand: AdminCommand<EligibleResult> = {
  id: 'principal-eligible', title: 'List Eligible Principals',
  instructions: "The users who may enter a category's rooms (its scope) or a room (its members, or the scope), or an auditorium's presenters, with the list entries that let them in; groups, org units and domains expanded. Name exactly one of a category or a room.",
  fields: [
    { name: 'category', type: 'text-single', label: 'The category (admins)' },
    { name: 'room', type: 'text-single', label: 'The room (admins and its managers)' },
    boolField('presenters', "The room's presenters (auditorium rooms)"),
    { name: 'filter', type: 'text-single', label: 'Only users whose JID matches (* wildcards)' },
    { name: 'limit', type: 'text-single', label: 'At most this many users' },
    SERVICE_FIELD,
  ],
  allowed: adminsOrServiceAccounts,
  run: (ctx, input) => op(() => {
    const category = optionalInput(input, 'category')?.trim() || undefined;
    const room = optionalInput(input, 'room')?.trim() || undefined;
    if ((category === undefined) === (room === undefined)) throw new AdminError('name exactly one of --category or --room');
    const limit = intInput(input, 'limit');
    if (limit !== undefined && limit < 0) throw new AdminError('--limit takes a number of at least 0');
    const filter = optionalInput(input, 'filter')?.trim() || undefined;
    return eligiblePrincipals(chatContext(ctx), chatActor(ctx.actor), serviceInput(ctx, input), {
      ...(category !== undefined ? { category } : {}), ...(room !== undefined ? { room } : {}),
      presenters: boolInput(input, 'presenters') ?? false,
      ...(filter !== undefined ? { filter } : {}), ...(limit !== undefined ? { limit } : {}),
    });
  }),
  render(r) {
    const lines = table(['USER', 'VIA'], r.users.map((u) => [u.jid, u.via.join(',')]));
    const notes = [{ type: 'info' as const, text: `${r.users.length} user(s) eligible for ${r.of}${r.truncated ? ' (limit reached: more are)' : ''}` }];
    return { notes, fields: [{ var: 'users', type: 'text-multi', label: 'Eligible users', values: lines }], lines };
  },
};

export const contentCommands: AnyAdminCommand[] = [roomClearCommand, roomRemoveMessagesCommand, principalEligibleCommand];
