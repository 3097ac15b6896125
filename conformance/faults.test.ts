// Nothing acknowledged is ever lost: one short round of each fault (conformance/faults/) against a
// three-node cluster on a private PostgreSQL cluster and a private Redis this suite starts and stops.
// Each round asserts that no message the server acknowledged (XEP-0198 <a/>) without an error reply
// is missing from its archive or from a recipient, and that none came twice. The soak (many rounds,
// longer faults) is bench/faults.mjs; the figures are in docs/reliability.md.
import { IN_CI } from './harness.js';
import { FaultRun, SHORT } from './faults/run.js';
import { formatTable, type RoundResult } from './faults/round.js';
import { expectGuaranteeHeld } from './faults/expect-guarantee.js';
import { missingTools } from './faults/services.js';

/** Fixed ports 43100..43104 (private Redis, PostgreSQL, three proxies); FAULTS_PORT_BASE moves them. */
const PORT_BASE = Number(process.env.FAULTS_PORT_BASE ?? 43100);

describe('conformance: faults (three nodes, private PostgreSQL and Redis)', function () {
  this.timeout(90_000);
  let run: FaultRun | undefined;
  const results: RoundResult[] = [];

  before(async function () {
    const missing = missingTools();
    if (missing) {
      if (IN_CI) throw new Error(`the fault-injection suite needs its own PostgreSQL and Redis (CI=true): ${missing}`);
      console.warn(`    skipping the fault-injection suite: ${missing}`);
      this.skip();
    }
    run = await FaultRun.start({ ...SHORT, portBase: PORT_BASE });
  });

  after(async function () {
    this.timeout(60_000);
    if (results.length) console.log(formatTable(results).split('\n').map((l) => `      ${l}`).join('\n'));
    await run?.close();
  });

  for (const fault of SHORT.faults) {
    it(`${fault}: every acknowledged message archived and delivered exactly once`, async function () {
      const r = await run!.round(fault, 1);
      results.push(r);
      const why = `${formatTable([r])}\nlost: ${r.detail.lostExamples.join('; ')}\nlost by second after the fault: ${JSON.stringify(r.detail.lostBySecond)}\nduplicated: ${r.detail.duplicateExamples.join('; ')}\nrefused but kept: ${r.detail.keptExamples.join('; ')}\nreordered: ${r.detail.reorderedExamples.join('; ')}\n${r.detail.notes.join('\n')}\nclients that lost their connection:\n${r.detail.clientEvents.join('\n')}`;
      expectGuaranteeHeld(r, why);
    });
  }
});
