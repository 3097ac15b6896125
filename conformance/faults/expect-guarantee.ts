// The delivery guarantee checked on one fault round (docs/architecture.md, Delivery guarantees), for
// every suite that runs rounds: nothing acknowledged lost, doubled or reordered, nothing refused kept,
// and room traffic back within the time the guarantee allows. `why` is the round's report.
import { expect } from 'chai';
import type { RoundResult } from './round.js';

export function expectGuaranteeHeld(r: RoundResult, why: string): void {
  expect(r.acked, `no message was acknowledged at all\n${why}`).to.be.greaterThan(0);
  expect(r.lost, `acknowledged messages lost\n${why}`).to.equal(0);
  expect(r.duplicated, `acknowledged messages duplicated\n${why}`).to.equal(0);
  expect(r.reordered, `room messages seen out of the archive's order\n${why}`).to.equal(0);
  expect(r.refusedButKept, `refused messages kept all the same\n${why}`).to.equal(0);
  expect(r.recoverSeconds, `some client never had room traffic again\n${why}`).to.not.equal(null);
  expect(r.recoverSeconds!, `recovery took longer than the guarantee allows\n${why}`).to.be.at.most(r.recoverDueSeconds);
}
