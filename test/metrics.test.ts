import { expect } from 'chai';
import { Metrics } from '../src/metrics.js';

describe('metrics: stanza counters', () => {
  const value = (text: string, name: string, kind: string): number | undefined => {
    const m = new RegExp(`^${name}\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };

  it('shows stanzas in and out by kind at each scrape, counting on across scrapes', async () => {
    const metrics = new Metrics();
    for (let i = 0; i < 3; i++) metrics.countIn('message');
    metrics.countIn('iq');
    metrics.countIn('stream:features'); // not a stanza kind: not counted
    for (let i = 0; i < 2; i++) metrics.countOut('presence');
    let text = await metrics.registry.metrics();
    expect(value(text, 'perch_stanzas_in_total', 'message')).to.equal(3);
    expect(value(text, 'perch_stanzas_in_total', 'iq')).to.equal(1);
    expect(value(text, 'perch_stanzas_in_total', 'presence')).to.equal(0);
    expect(value(text, 'perch_stanzas_out_total', 'presence')).to.equal(2);
    expect(text).to.not.include('stream:features');
    metrics.countIn('message');
    text = await metrics.registry.metrics();
    expect(value(text, 'perch_stanzas_in_total', 'message')).to.equal(4);
    expect(value(text, 'perch_stanzas_out_total', 'presence')).to.equal(2);
  });
});
