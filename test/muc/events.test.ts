// The room event contract (src/muc/events.ts), and defect D1: a room policy that refused
// asynchronously let the join through and crashed the process with an unhandled rejection.
import { expect } from 'chai';
import { StanzaError } from '../../protocol/errors.js';
import { createLogger } from '../../src/log.js';
import { RoomHooks } from '../../src/muc/events.js';
import type { Room } from '../../src/muc/room.js';
import { sharedKit, conditionOf, statusesOf, type RoomKit } from './kit.js';

describe('room events (src/muc/events.ts)', () => {
  const log = createLogger('error');
  const room = {} as Room;

  it('check: the first throw refuses, later checks do not run', () => {
    const hooks = new RoomHooks(log);
    const ran: string[] = [];
    hooks.on('message/private', () => { ran.push('high'); throw new StanzaError('forbidden'); }, 10);
    hooks.on('message/private', () => { ran.push('low'); return undefined; }, 0);
    expect(() => hooks.check('message/private', { room } as never)).to.throw(StanzaError);
    expect(ran).to.deep.equal(['high']);
  });

  it('decide: the first answer that is not undefined wins, by priority', () => {
    const hooks = new RoomHooks(log);
    hooks.on('occupant/default-role', () => undefined, 30);
    hooks.on('occupant/default-role', () => 'visitor', 20);
    hooks.on('occupant/default-role', () => 'none', 10);
    expect(hooks.decide('occupant/default-role', { room, affiliation: 'none' })).to.equal('visitor');
    expect(new RoomHooks(log).decide('occupant/default-role', { room, affiliation: 'none' })).to.equal(undefined);
  });

  it('after: a failing handler is logged and the others still run', () => {
    const hooks = new RoomHooks(log);
    let ran = false;
    hooks.on('room/destroyed', () => { throw new Error('boom'); }, 10);
    hooks.on('room/destroyed', () => { ran = true; return undefined; });
    hooks.after('room/destroyed', { room });
    expect(ran).to.equal(true);
  });

  it('handle: one handler per IQ type and namespace', () => {
    const hooks = new RoomHooks(log);
    hooks.iq('get', 'urn:example', ({ reply }) => reply());
    expect(() => hooks.iq('get', 'urn:example', ({ reply }) => reply())).to.throw(/twice/);
  });

  it('an async check does not compile', () => {
    const hooks = new RoomHooks(log);
    // @ts-expect-error a check returns undefined, and an async function returns a Promise
    const register = () => hooks.on('occupant/pre-join', async () => { throw new StanzaError('forbidden'); });
    expect(register).to.be.a('function');
  });

  it('admission: undefined from every step means no promise; a promise holds the later steps; handled stops them', async () => {
    const hooks = new RoomHooks(log);
    const ran: string[] = [];
    const a = {} as Parameters<RoomHooks['admission']>[0];
    hooks.admit(() => { ran.push('sync'); return undefined; });
    expect(hooks.admission(a)).to.equal(undefined);
    let release!: () => void;
    hooks.admit(() => new Promise((r) => { release = () => { ran.push('slow'); r(undefined); }; }));
    hooks.admit(() => { ran.push('after slow'); return Promise.resolve('handled'); });
    hooks.admit(() => { ran.push('never'); return undefined; });
    ran.length = 0;
    const verdict = hooks.admission(a)!;
    await new Promise((r) => setTimeout(r, 10));
    expect(ran).to.deep.equal(['sync']);
    release();
    expect(await verdict).to.equal('handled');
    expect(ran).to.deep.equal(['sync', 'slow', 'after slow']);
  });

  describe('D1: a refusal cannot be lost', () => {
    let kit: RoomKit;
    before(async function () { this.timeout(60000); kit = await sharedKit(); });

    it('a synchronous check refuses the join with its error', async () => {
      kit.service.hooks.on('occupant/pre-join', ({ room, nick }) => {
        if (room.name !== 'd1') return undefined;
        if (nick === 'intruder') throw new StanzaError('forbidden', 'refused by policy');
        return undefined;
      });
      const owner = await kit.client('owner@localhost');
      expect(statusesOf(await owner.join('d1', 'owner', { plain: true }))).to.include(110);
      const guest = await kit.client('guest@localhost');
      const answer = await guest.join('d1', 'intruder');
      expect(conditionOf(answer)).to.equal('forbidden');
    });

    it('an async check forced past the types refuses the join, and no rejection goes unhandled', async () => {
      const unhandled: unknown[] = [];
      const onUnhandled = (e: unknown) => { unhandled.push(e); };
      process.prependListener('unhandledRejection', onUnhandled);
      try {
        const refuse = (async () => { throw new StanzaError('forbidden', 'refused later'); }) as unknown as () => undefined;
        kit.service.hooks.on('occupant/pre-join', ({ room, nick }) => (room.name === 'd1' && nick === 'late' ? refuse() : undefined));
        const guest = await kit.client('late@localhost');
        const answer = await guest.join('d1', 'late');
        await new Promise((r) => setTimeout(r, 50));
        expect(answer.attrs.type).to.equal('error');
        expect(kit.service.loadedRoom('d1')!.occupants.has('late')).to.equal(false);
        expect(unhandled).to.deep.equal([]);
      } finally {
        process.removeListener('unhandledRejection', onUnhandled);
      }
    });
  });
});
