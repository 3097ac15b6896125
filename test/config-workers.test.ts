import { expect } from 'chai';
import { withConfig, errorOf } from './config-kit.js';
import { plannedWorkers } from '../src/workers.js';

const SERVICES = 'databaseUrl: postgres://db/perch\nredisUrl: redis://127.0.0.1:6379\n';

describe('config: workers (perch start --workers N)', () => {
  it('defaults to auto; takes a count from the file or PERCH_WORKERS (as --workers passes it)', async () => {
    expect((await withConfig('{}\n')).workers).to.equal('auto');
    expect((await withConfig(`${SERVICES}workers: 3\n`)).workers).to.equal(3);
    expect((await withConfig(SERVICES, { PERCH_WORKERS: '2' })).workers).to.equal(2);
    expect((await withConfig(SERVICES, { PERCH_WORKERS: 'auto' })).workers).to.equal('auto');
    // One is always possible, also on the embedded stores.
    expect((await withConfig('workers: 1\n')).workers).to.equal(1);
  });

  it('refuses what is not a count', async () => {
    for (const bad of ['0', '-1', '1.5', 'many', '257', '""']) {
      expect(await errorOf(`${SERVICES}workers: ${bad}\n`), bad).to.match(/^config: workers: must be auto or an integer from 1 to 256/);
    }
  });

  it('refuses several workers on the embedded stores, naming what is missing and why', async () => {
    const none = await errorOf('workers: 2\n');
    expect(none).to.contain('config: workers: 2 workers need PostgreSQL and Redis');
    expect(none).to.contain('databaseUrl (PostgreSQL) and redisUrl (Redis) not configured');
    expect(none).to.contain('PGlite');
    expect(await errorOf('databaseUrl: postgres://db/perch\nworkers: 2\n')).to.contain('redisUrl (Redis) not configured');
    expect(await errorOf('redisUrl: redis://127.0.0.1:6379\nworkers: 2\n')).to.contain('databaseUrl (PostgreSQL) not configured');
  });

  it('auto is one per core with PostgreSQL and Redis, else one process, and says why', async () => {
    expect(plannedWorkers(await withConfig(SERVICES), 8)).to.deep.equal({ count: 8, why: 'one per core (8)' });
    const embedded = plannedWorkers(await withConfig('{}\n'), 8);
    expect(embedded.count).to.equal(1);
    expect(embedded.why).to.contain('PGlite').and.to.contain('session store');
    expect(plannedWorkers(await withConfig('databaseUrl: postgres://db/perch\n'), 8).count).to.equal(1);
    expect(plannedWorkers(await withConfig(`${SERVICES}workers: 2\n`), 8)).to.deep.equal({ count: 2, why: 'configured' });
  });
});
