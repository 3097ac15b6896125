import { expect } from 'chai';
import { ClusterOutbox } from '../src/cluster-batch.js';
import { decodeBatch, encodeBatch, type ClusterEnvelope } from '../src/cluster-message.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('cluster envelopes: one publish per node and turn', () => {
  it('writes a room message sent to several sessions once, and gives each back addressed as before', () => {
    const body = "<message from='r@conference.example.com/n' type='groupchat'><body>a &amp; b</body></message>";
    const addressed = (to: string) => body.replace('<message', `<message to='${to}'`);
    const envs: ClusterEnvelope[] = [
      { t: 'd', to: 'a@example.com/1', x: addressed('a@example.com/1') },
      { t: 'm', topic: 'muc', data: { confirm: 'x' } },
      { t: 'd', to: "o'q@example.com/2", x: addressed('o&apos;q@example.com/2') },
      { t: 'd', to: 'c@example.com/3', x: "<presence to='someone@else'/>" },
    ];
    const payload = encodeBatch(envs);
    expect(payload.split('a &amp; b').length - 1, 'the stanza written once').to.equal(1);
    expect(decodeBatch(JSON.parse(payload) as ClusterEnvelope)).to.deep.equal(envs);
  });

  it('batches to a node that reads batches; one envelope at a time, in order, to one that does not (rolling upgrade)', async () => {
    const sent: [string, string][] = [];
    const outbox = new ClusterOutbox(async (node, payload) => { sent.push([node, payload]); });
    outbox.readsBatches('new', true);
    for (const node of ['new', 'old', 'new', 'old']) outbox.push(node, { t: 'k', to: `${node}${sent.length}` });
    await tick();
    expect(sent.map(([n]) => n)).to.deep.equal(['new', 'old', 'old']);
    expect((JSON.parse(sent[0]![1]) as ClusterEnvelope).t).to.equal('b');
    expect(sent.slice(1).map(([, p]) => (JSON.parse(p) as ClusterEnvelope).t)).to.deep.equal(['k', 'k']);
    expect([outbox.publishes, outbox.envelopes]).to.deep.equal([3, 4]);
  });

  it('splits a large turn into publishes of at most 1,000 envelopes, in order', async () => {
    const sent: string[] = [];
    const outbox = new ClusterOutbox(async (_node, payload) => { sent.push(payload); });
    outbox.readsBatches('n', true);
    for (let i = 0; i < 2500; i++) outbox.push('n', { t: 'k', to: String(i) });
    await tick();
    const parts = sent.map((p) => decodeBatch(JSON.parse(p) as ClusterEnvelope).map((e) => Number(e.to)));
    expect(parts.map((p) => p.length)).to.deep.equal([1000, 1000, 500]);
    expect(parts.flat()).to.deep.equal([...Array(2500).keys()]);
  });

  it('reports a failed publish for each envelope in it', async () => {
    const failed: string[] = [];
    const outbox = new ClusterOutbox(async () => { throw new Error('down'); });
    outbox.readsBatches('n', true);
    outbox.push('n', { t: 'k', to: 'a' }, () => failed.push('a'));
    outbox.push('n', { t: 'k', to: 'b' }, () => failed.push('b'));
    await tick();
    expect(failed).to.deep.equal(['a', 'b']);
  });
});
