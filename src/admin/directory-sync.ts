// `directory sync`: reads the configured LDAP server and applies what changed to the directory
// (groups, nesting, org units, users' units) through the directory operations; dry-run only reports.
import { syncDirectory, reportLines, type SyncReport } from '../directory/ldap-sync.js';
import { ChatOpError } from '../pchat/operations.js';
import { AdminError, isAdminActor, type AdminCommand, type AnyAdminCommand } from './command.js';
import { boolField, boolInput, chatContext } from './chat-context.js';

export const directorySyncCommand: AdminCommand<SyncReport> = {
  id: 'directory-sync', title: 'Sync the Directory from LDAP',
  instructions: 'Reads users, groups and org units from the LDAP server (directory.ldap) and applies what changed; each change takes effect at once in every room. With dry-run, only reports.',
  fields: [boolField('dry-run', 'Only report what would change')],
  allowed: isAdminActor,
  async run(ctx, input) {
    const ldap = ctx.config.directory.ldap;
    if (!ldap) throw new AdminError('no LDAP server is configured (directory.ldap)', 'service-unavailable');
    try {
      return await syncDirectory(chatContext(ctx), ldap, { dryRun: boolInput(input, 'dry-run') ?? false, scramIterations: ctx.scramIterations, ...(ctx.progress ? { progress: ctx.progress } : {}) });
    } catch (e) {
      if (e instanceof ChatOpError) throw new AdminError(e.message, e.condition === 'bad-request' ? 'bad-request' : 'conflict');
      // The LDAP server unreachable, a bind refused, a search failing: the sync changed nothing.
      throw new AdminError(`LDAP: ${(e as Error).message}`, 'service-unavailable');
    }
  },
  render(r) {
    const lines = reportLines(r);
    return {
      notes: [{ type: 'info', text: lines[0]! }],
      fields: [{ var: 'report', type: 'text-multi', label: 'Report', values: lines }],
      lines: lines.slice(1),
    };
  },
};

export const directorySyncCommands: AnyAdminCommand[] = [directorySyncCommand];
