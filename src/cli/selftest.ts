// `perch selftest`: the self-test for people (a table) and for monitoring (--json, and the exit
// code: 0 every step passed, 1 a step failed or the server was unreachable, 2 usage). It runs where
// the admin operations run: in the server holding the data directory (through its admin socket),
// else here, against the c2s listener the configuration (or --host/--port) names.
import type { Config } from '../config.js';
import { selftestCommand, reportTable, summary } from '../admin/selftest.js';
import { failedBeforeStart, type SelftestReport } from '../selftest/run.js';
import { openAdminTarget, Unreachable } from './target.js';
import { commandHelp, completeInput, parseFlags, EXIT_FAILED, EXIT_OK, EXIT_USAGE, type Io } from './admin.js';

const HELP_MORE = `
Without --user1/--user2 and --room, it uses the test accounts and room that --setup made
(perch-selftest-1, perch-selftest-2 and perch-selftest@<service>; run --setup once, or again to
reset them). Passwords of --user1/--user2 come from --password1/--password2, else from
$PERCH_SELFTEST_PASSWORD1/$PERCH_SELFTEST_PASSWORD2, else from stdin (one line each).
Exit codes: 0 every step passed, 1 a step failed (the report names it), 2 usage error.
`;

export async function selftestMain(config: Config, args: string[], io: Io): Promise<number> {
  const { input, json, help } = parseFlags(selftestCommand, args);
  if (help) {
    io.out(commandHelp(selftestCommand, 'perch selftest') + HELP_MORE);
    return EXIT_OK;
  }
  for (const n of [1, 2]) {
    const fromEnv = process.env[`PERCH_SELFTEST_PASSWORD${n}`];
    if (input[`user${n}`]?.length && !input[`password${n}`]?.length && fromEnv) input[`password${n}`] = [fromEnv];
  }
  await completeInput(selftestCommand, input, io);
  let report: SelftestReport;
  let target;
  try {
    target = await openAdminTarget(config, (line) => io.err(line + '\n'));
  } catch (e) {
    if (!(e instanceof Unreachable)) throw e;
    target = null;
    report = failedBeforeStart('admin', e.message);
  }
  if (target) {
    try {
      const r = await target.run(selftestCommand, input);
      if (!r.ok) {
        if (json) io.out(JSON.stringify({ ok: false, error: r.error, condition: r.condition }) + '\n');
        io.err(`perch: selftest: ${r.error}\n`);
        return r.condition === 'bad-request' ? EXIT_USAGE : EXIT_FAILED;
      }
      report = r.output as SelftestReport;
    } finally {
      await target.close();
    }
  }
  if (json) io.out(JSON.stringify(report!) + '\n');
  else {
    io.out(reportTable(report!).join('\n') + '\n');
    (report!.ok ? io.out : io.err)(summary(report!) + '\n');
  }
  return report!.ok ? EXIT_OK : EXIT_FAILED;
}
