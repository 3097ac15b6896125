import { expect } from 'chai';
import { createLogger } from '../src/log.js';

describe('log: the node and worker that write a line', () => {
  it('keeps the logger\'s own fields; a call\'s field of the same name becomes peer_<name>', () => {
    const lines: string[] = [];
    const log = createLogger('info', { node: 'n-w2', worker: 2 }, (l) => lines.push(l));
    log.warn('cluster send failed', { node: 'n-w1', err: new Error('cannot be reached') });
    log.child({ room: 'r@conference.localhost' }).info('room loaded', { worker: 1 });
    const [a, b] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(a).to.include({ msg: 'cluster send failed', node: 'n-w2', worker: 2, peer_node: 'n-w1', err: 'cannot be reached' });
    expect(b).to.include({ node: 'n-w2', worker: 2, room: 'r@conference.localhost', peer_worker: 1 });
  });
});
