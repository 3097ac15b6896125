// The scheduled LDAP sync, and (auth: ldap) passwords given in the clear checked by an LDAP bind.
// Every node runs the timer, one node syncs: the one holding the cluster
// lease "directory-ldap-sync", renewed by each of its runs and held a little longer than the interval,
// so another node takes over only when the holder stops. Runs are idempotent all the same (a sync
// compares before it changes), so a takeover at the wrong moment costs a second read, not a change.
import type { Module, Server } from '../context.js';
import { serverOpContext } from '../pchat/operations.js';
import { checkLdapPassword, syncDirectory, reportLines } from './ldap-sync.js';

const LEASE_KEY = 'directory-ldap-sync';
/** The first run after start waits this long (the node is up and the model loaded); tests shorten it. */
const FIRST_RUN_MS = Number(process.env.PERCH_DIRECTORY_SYNC_FIRST_MS) > 0 ? Number(process.env.PERCH_DIRECTORY_SYNC_FIRST_MS) : 10_000;

const timers = new Map<Server, NodeJS.Timeout>();
const inflight = new Map<Server, Set<Promise<unknown>>>();

async function tick(server: Server, intervalMs: number): Promise<void> {
  const ldap = server.config.directory.ldap;
  if (!ldap) return;
  try {
    const holder = await server.sessions.acquireLease(LEASE_KEY, intervalMs + Math.min(intervalMs, 60_000));
    if (holder !== server.sessions.nodeId) return;
    const report = await syncDirectory(serverOpContext(server), ldap, { scramIterations: server.config.scramIterations });
    const lines = reportLines(report);
    server.log.info('directory sync from LDAP', { summary: lines[0], changes: lines.slice(1).filter((l) => !l.startsWith('warning: ')).length, ms: report.ms });
    for (const l of lines.slice(1)) server.log.debug('directory sync', { change: l });
    for (const w of report.warnings) server.log.warn('directory sync', { warning: w });
  } catch (err) {
    server.log.error('directory sync from LDAP failed; nothing more was changed, the next run tries again', { err });
  }
}

export const directorySyncModule: Module = {
  name: 'directory-ldap-sync',
  init(server) {
    const ldap = server.config.directory.ldap;
    if (ldap?.auth === 'ldap') {
      // SASL PLAIN only (the one mechanism that hands the server the password); a user the search does
      // not find keeps their local password. LDAP unreachable: refused, not let in on the local one.
      server.hooks.on('auth/password', async (ev) => {
        try {
          const ok = await checkLdapPassword(ldap, ev.username, ev.password);
          if (ok === null) return false;
          ev.verified = ok;
        } catch (err) {
          server.log.error('LDAP password check failed: sign-in refused', { user: ev.username, err });
          ev.verified = false;
        }
        return true;
      });
    }
    if (!ldap || ldap.syncIntervalMinutes === 0) return;
    const intervalMs = ldap.syncIntervalMinutes * 60_000;
    const run = () => {
      let mine = inflight.get(server);
      if (!mine) inflight.set(server, (mine = new Set()));
      const p = tick(server, intervalMs).finally(() => mine.delete(p));
      mine.add(p);
    };
    const first = setTimeout(() => {
      run();
      const t = setInterval(run, intervalMs);
      t.unref();
      timers.set(server, t);
    }, Math.min(FIRST_RUN_MS, intervalMs));
    first.unref();
    timers.set(server, first);
  },
  async stop(server) {
    const t = timers.get(server);
    if (t) { clearTimeout(t); clearInterval(t); }
    timers.delete(server);
    await Promise.allSettled([...(inflight.get(server) ?? [])]);
  },
};
