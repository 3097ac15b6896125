import { expect } from 'chai';
import client from 'prom-client';
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

  it('exposes the routing histogram exactly as a prom-client histogram fed the same times would', async () => {
    const metrics = new Metrics();
    const reference = new client.Registry();
    const same = new client.Histogram({
      name: 'perch_routing_seconds', help: 'Time from a stanza arriving to it being handed to its destination',
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25], registers: [reference],
    });
    for (const t of [0.00003, 0.00005, 0.0003, 0.0003, 0.004, 0.3, 2]) {
      metrics.routingSeconds.observe(t);
      same.observe(t);
    }
    const lines = (text: string) => text.split('\n').filter((l) => l.startsWith('perch_routing_seconds') || l.includes(' perch_routing_seconds '));
    const ours = lines(await metrics.registry.metrics());
    expect(ours).to.have.length(15);
    expect(ours).to.deep.equal(lines(await reference.metrics()));
    expect(ours).to.include('perch_routing_seconds_bucket{le="0.00005"} 2');
    expect(ours).to.include('perch_routing_seconds_count 7');
  });
});
