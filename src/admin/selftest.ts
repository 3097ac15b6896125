// The self-test as an admin operation: the ad-hoc command on the server JID and `perch selftest`.
// Two accounts log in over the c2s listener, join a room, exchange a pair of messages, find them
// in the archive and by search, leave and log off; the report gives each step's outcome and time.
import { tryParseJid } from '../../protocol/jid.js';
import type { FormField } from '../../protocol/forms.js';
import { loadFixture, setupFixture, type TestAccount } from '../selftest/fixture.js';
import { failedBeforeStart, runSelftest, type SelftestReport, type StepResult } from '../selftest/run.js';
import { chatContext, op } from './chat-context.js';
import { AdminError, isAdminActor, one, type AdminCommand, type AdminContext, type AdminInput, type Rendered } from './command.js';

export const DEFAULT_STEP_TIMEOUT_S = 10;

function accountInput(ctx: AdminContext, input: AdminInput, n: 1 | 2): TestAccount | null {
  const raw = one(input, `user${n}`).trim();
  if (!raw) return null;
  const j = tryParseJid(raw.includes('@') ? raw : `${raw}@${ctx.domain}`);
  if (!j || !j.local || j.resource) throw new AdminError(`user${n}: ${raw} is not an account JID`);
  if (j.domain !== ctx.domain) throw new AdminError(`user${n}: ${raw} is not an account of ${ctx.domain}`);
  const password = one(input, `password${n}`);
  if (!password) throw new AdminError(`user${n} needs password${n}`);
  return { username: j.local, password };
}

/** Where the c2s listener is: as given, else this server's own listener, else the configured one. */
function listener(ctx: AdminContext, input: AdminInput): { host: string; port: number } {
  const conf = ctx.config.listen.c2s;
  const given = one(input, 'host').trim();
  let host = given || conf?.host || '127.0.0.1';
  // A listener on every address is reached on the loopback one.
  if (!given && (host === '0.0.0.0' || host === '::')) host = host === '::' ? '::1' : '127.0.0.1';
  const rawPort = one(input, 'port').trim();
  const port = rawPort ? Number(rawPort) : ctx.server?.ports.c2s ?? conf?.port;
  if (port === undefined) throw new AdminError('no c2s listener is configured: give the port to test');
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new AdminError(`port: ${rawPort || port} is not a TCP port`);
  return { host, port };
}

export const selftestCommand: AdminCommand<SelftestReport> = {
  id: 'selftest', title: 'Self-Test',
  instructions: 'Two test accounts log in, join a room, exchange a pair of messages, find them in the archive and by search, '
    + 'leave and log off; each step is reported with its time. Setup creates or resets the test accounts and room first.',
  fields: [
    { name: 'setup', type: 'boolean', label: 'Create or reset the test accounts and room first' },
    { name: 'service', type: 'jid-single', label: 'MUC service of the test room (setup; when the server has several)' },
    { name: 'room', type: 'jid-single', label: 'Room to test instead of the test room' },
    { name: 'user1', type: 'jid-single', label: 'First account instead of the test account' },
    { name: 'password1', type: 'text-private', label: 'Password of the first account', askedWith: 'user1' },
    { name: 'user2', type: 'jid-single', label: 'Second account instead of the test account' },
    { name: 'password2', type: 'text-private', label: 'Password of the second account', askedWith: 'user2' },
    { name: 'host', type: 'text-single', label: 'Host of the c2s listener (default: this server\'s)' },
    { name: 'port', type: 'text-single', label: 'Port of the c2s listener (default: this server\'s)' },
    { name: 'timeout', type: 'text-single', label: `Seconds each step may take (default ${DEFAULT_STEP_TIMEOUT_S})` },
  ],
  allowed: isAdminActor,
  async run(ctx, input) {
    const setup = ['1', 'true', 'on', 'yes'].includes(one(input, 'setup').toLowerCase());
    const rawTimeout = one(input, 'timeout').trim();
    const timeoutS = rawTimeout ? Number(rawTimeout) : DEFAULT_STEP_TIMEOUT_S;
    if (!(timeoutS > 0 && timeoutS <= 600)) throw new AdminError(`timeout: ${rawTimeout} is not a number of seconds (up to 600)`);
    const { host, port } = listener(ctx, input);
    const given = [accountInput(ctx, input, 1), accountInput(ctx, input, 2)] as const;
    if ((given[0] === null) !== (given[1] === null)) throw new AdminError('give both user1 and user2, or neither');
    const roomInput = one(input, 'room').trim();
    if (roomInput) {
      const j = tryParseJid(roomInput);
      if (!j || !j.local || j.resource) throw new AdminError(`room: ${roomInput} is not a room JID (name@service)`);
    }

    const first: StepResult[] = [];
    const t0 = performance.now();
    let fixture = null;
    if (setup) {
      try {
        const r = await op(() => setupFixture(chatContext(ctx), ctx.scramIterations, one(input, 'service').trim() || null));
        fixture = r.fixture;
        first.push({ name: 'setup', ok: true, ms: Math.round(performance.now() - t0), detail: r.actions.join('; ') });
      } catch (e) {
        return record(ctx, { ...failedBeforeStart('setup', (e as Error).message), totalMs: Math.round(performance.now() - t0) });
      }
    } else if (!given[0] || !roomInput) {
      fixture = await loadFixture(ctx.stores);
      if (!fixture) {
        return record(ctx, failedBeforeStart('fixture', 'no self-test accounts and room: run perch selftest --setup first (or give user1, user2 and room)'));
      }
    }
    const users = given[0] && given[1] ? [given[0], given[1]] as [TestAccount, TestAccount] : fixture!.users;
    const room = roomInput || fixture!.room;
    const report = await runSelftest({ host, port, domain: ctx.domain, room, users, timeoutMs: timeoutS * 1000 }, first);
    await explainJoinFailure(ctx, report, room);
    return record(ctx, report);
  },
  render: renderReport,
};

/**
 * A room that refuses a join says little to its client (a disabled room is item-not-found, as if
 * absent); the stored record says why, so the report does.
 */
async function explainJoinFailure(ctx: AdminContext, report: SelftestReport, room: string): Promise<void> {
  const failed = report.steps.find((s) => !s.ok);
  if (!failed?.name.startsWith('join')) return;
  const j = tryParseJid(room)!;
  const rec = await ctx.stores.chat.room(j.domain, j.local!);
  if (rec?.disabled) failed.detail += `; the room is disabled (perch room enable ${room}, or perch selftest --setup)`;
}

/** Keeps the outcome as this node's metrics (for Prometheus) when a server runs the test. */
function record(ctx: AdminContext, report: SelftestReport): SelftestReport {
  const m = ctx.server?.metrics;
  if (m) {
    m.selftestOk.set(report.ok ? 1 : 0);
    m.selftestSeconds.set(report.totalMs / 1000);
    m.selftestTimestamp.set(Date.now() / 1000);
    ctx.server!.log.info('selftest', { ok: report.ok, totalMs: report.totalMs, failed: report.steps.find((s) => !s.ok)?.name });
  }
  return report;
}

/** The report as an aligned table: STEP, RESULT, TIME ms, DETAIL. */
export function reportTable(report: SelftestReport): string[] {
  const rows = [['STEP', 'RESULT', 'TIME ms', 'DETAIL'], ...report.steps.map((s) => [s.name, s.ok ? 'ok' : 'FAILED', s.ms.toFixed(1), s.detail])];
  const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => `${r[0]!.padEnd(w[0]!)}  ${r[1]!.padEnd(w[1]!)}  ${r[2]!.padStart(w[2]!)}  ${r[3]}`);
}

export function summary(report: SelftestReport): string {
  const failed = report.steps.find((s) => !s.ok);
  return failed
    ? `self-test FAILED at ${failed.name} after ${report.totalMs.toFixed(1)} ms: ${failed.detail}`
    : `self-test passed: ${report.steps.length} steps in ${report.totalMs.toFixed(1)} ms`;
}

export function renderReport(report: SelftestReport): Rendered {
  const fields: FormField[] = [
    { var: 'ok', type: 'boolean', label: 'Passed', values: [report.ok ? '1' : '0'] },
    { var: 'total-ms', type: 'text-single', label: 'Total time (ms)', values: [report.totalMs.toFixed(1)] },
    { var: 'failed-step', type: 'text-single', label: 'Failed step', values: report.steps.filter((s) => !s.ok).map((s) => s.name) },
    { var: 'steps', type: 'text-multi', label: 'Steps', values: reportTable(report) },
  ];
  return { notes: [{ type: report.ok ? 'info' : 'error', text: summary(report) }], fields, lines: reportTable(report) };
}
