// The pubsub store (nodes, items in publish order with trimming, subscriptions, affiliations) and
// the engine's rules over it (PEP auto-create, publish-options preconditions, access models), on
// PGlite and on PostgreSQL.
import { expect } from 'chai';
import { sqlBackends } from './services.js';
import { migrate } from '../storage/migrations.js';
import { createPubsubStore, type PubsubStore } from '../storage/sql-pubsub.js';
import type { Db } from '../storage/types.js';
import { Element } from '../protocol/xml.js';
import { StanzaError } from '../protocol/errors.js';
import { PubsubEngine, type ServicePolicy } from '../src/pubsub/engine.js';

const backends = sqlBackends;

const payload = (text: string): Element => new Element('entry', { xmlns: 'urn:example:entry' }).t(text);

async function rejects(p: Promise<unknown>): Promise<StanzaError> {
  try { await p; } catch (e) { if (e instanceof StanzaError) return e; throw e; }
  throw new Error('expected a StanzaError');
}

describe('pubsub store and engine', function () {
  for (const backend of backends) {
    describe(backend.name, function () {
      let db: Db;
      let store: PubsubStore;
      let dispose: (() => Promise<void>) | null = null;
      const subscribedTo = new Set<string>();
      const pepPolicy: ServicePolicy = {
        pep: true,
        defaults: () => ({ 'pubsub#persist_items': 'true', 'pubsub#max_items': '1', 'pubsub#access_model': 'presence' }),
        mayCreate: (service, actor) => service === actor,
        presenceSubscribed: async (owner, jid) => subscribedTo.has(`${owner} ${jid}`),
        rosterGroups: async (owner, jid) => (subscribedTo.has(`${owner} ${jid}`) ? ['Friends'] : null),
      };
      const servicePolicy: ServicePolicy = { ...pepPolicy, pep: false, defaults: () => ({ 'pubsub#max_items': '20', 'pubsub#access_model': 'open' }), mayCreate: (_s, a) => a === 'admin@localhost' };
      before(async function () {
        try {
          const o = await backend.open();
          dispose = o.dispose;
          db = o.db;
          await migrate(db);
          store = createPubsubStore(db);
        } catch (e) {
          if ((e as { skip?: boolean }).skip) { console.warn(`    ${(e as Error).message}: skipping`); this.skip(); }
          throw e;
        }
      });
      after(async () => { await dispose?.(); });
      beforeEach(async () => { await db.query('DELETE FROM pubsub_nodes'); subscribedTo.clear(); });

      it('keeps items in publish order, moves a republished id last and trims to max_items', async () => {
        expect(await store.createNode({ service: 's', node: 'n', owner: 'o@x', config: { 'pubsub#title': 'T' } })).to.equal(true);
        expect(await store.createNode({ service: 's', node: 'n', owner: 'o@x', config: {} })).to.equal(false);
        for (const id of ['a', 'b', 'c']) await store.publish('s', 'n', { id, publisher: 'o@x', payload: `<p>${id}</p>` }, 10);
        await store.publish('s', 'n', { id: 'a', publisher: 'o@x', payload: '<p>a2</p>' }, 10);
        expect((await store.items('s', 'n')).map((i) => i.id)).to.deep.equal(['b', 'c', 'a']);
        expect((await store.items('s', 'n', { max: 2 })).map((i) => i.id)).to.deep.equal(['c', 'a']);
        expect((await store.items('s', 'n', { ids: ['a', 'zz'] })).map((i) => i.payload)).to.deep.equal(['<p>a2</p>']);
        await store.publish('s', 'n', { id: 'd', publisher: 'o@x', payload: '' }, 2);
        expect((await store.items('s', 'n')).map((i) => i.id)).to.deep.equal(['a', 'd']);
        expect(await store.retract('s', 'n', 'a')).to.equal(true);
        expect(await store.retract('s', 'n', 'a')).to.equal(false);
        expect((await store.node('s', 'n'))!.config).to.deep.equal({ 'pubsub#title': 'T' });
      });

      it('keeps subscriptions and affiliations per node and drops them with it', async () => {
        await store.createNode({ service: 's', node: 'n', owner: 'o@x', config: {} });
        await store.setSubscription('s', 'n', 'a@x/r1', 'subscribed');
        await store.setSubscription('s', 'n', 'a@x', 'subscribed');
        await store.setSubscription('s', 'n', 'ab@x', 'subscribed');
        expect((await store.subscriptionsOf('s', 'a@x')).map((r) => r.jid)).to.deep.equal(['a@x', 'a@x/r1']);
        await store.setAffiliation('s', 'n', 'p@x', 'publisher');
        await store.setAffiliation('s', 'n', 'p@x', 'member');
        expect(await store.affiliations('s', 'n')).to.deep.equal([{ jid: 'p@x', affiliation: 'member' }]);
        expect(await store.deleteNode('s', 'n')).to.equal(true);
        expect(await store.subscriptions('s', 'n')).to.deep.equal([]);
        expect(await store.affiliations('s', 'n')).to.deep.equal([]);
        expect(await store.deleteNode('s', 'n')).to.equal(false);
      });

      it('PEP: creates the node on publish with the options, then checks them as preconditions', async () => {
        const pep = new PubsubEngine(store, pepPolicy);
        const r = await pep.publish('ann@x', 'urn:xmpp:bookmarks:1', 'ann@x', { id: 'room@muc', publisher: 'ann@x', payload: payload('1') },
          { 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max' });
        expect(r.node.config['pubsub#access_model']).to.equal('whitelist');
        await pep.publish('ann@x', 'urn:xmpp:bookmarks:1', 'ann@x', { id: 'other@muc', publisher: 'ann@x', payload: payload('2') }, { 'pubsub#access_model': 'whitelist' });
        expect((await store.items('ann@x', 'urn:xmpp:bookmarks:1')).length).to.equal(2);
        const e = await rejects(pep.publish('ann@x', 'urn:xmpp:bookmarks:1', 'ann@x', { id: 'x', publisher: 'ann@x', payload: null }, { 'pubsub#access_model': 'open' }));
        expect(e.condition).to.equal('conflict');
        expect(e.appCondition?.name).to.equal('precondition-not-met');
        expect((await rejects(pep.publish('ann@x', 'n', 'bob@x', { id: '', publisher: 'bob@x', payload: null }, null))).condition).to.equal('forbidden');
      });

      it('PEP: presence and whitelist access models give their XEP-0060 conditions', async () => {
        const pep = new PubsubEngine(store, pepPolicy);
        await pep.publish('ann@x', 'tune', 'ann@x', { id: 'current', publisher: 'ann@x', payload: payload('t') }, null);
        const denied = await rejects(pep.items('ann@x', 'tune', 'bob@x', 'bob@x/r', {}));
        expect([denied.condition, denied.appCondition?.name]).to.deep.equal(['not-authorized', 'presence-subscription-required']);
        subscribedTo.add('ann@x bob@x');
        expect((await pep.items('ann@x', 'tune', 'bob@x', 'bob@x/r', {})).items.map((i) => i.id)).to.deep.equal(['current']);
        await pep.configure('ann@x', 'tune', 'ann@x', { 'pubsub#access_model': 'whitelist' });
        const closed = await rejects(pep.items('ann@x', 'tune', 'bob@x', 'bob@x/r', {}));
        expect([closed.condition, closed.appCondition?.name]).to.deep.equal(['not-allowed', 'closed-node']);
        await store.setAffiliation('ann@x', 'tune', 'bob@x', 'member');
        expect((await pep.items('ann@x', 'tune', 'bob@x', 'bob@x/r', {})).items.length).to.equal(1);
        expect((await rejects(pep.items('ann@x', 'nope', 'ann@x', 'ann@x/r', {}))).condition).to.equal('item-not-found');
      });

      it('service: creation rights, subscribe and unsubscribe rules, outcasts, authorize refused', async () => {
        const svc = new PubsubEngine(store, servicePolicy);
        expect((await rejects(svc.create('pubsub.x', 'n', 'bob@x'))).condition).to.equal('forbidden');
        await svc.create('pubsub.x', 'n', 'admin@localhost');
        const n = await svc.node('pubsub.x', 'n');
        expect(n.config['pubsub#max_items']).to.equal('20');
        expect((await rejects(svc.create('pubsub.x', 'n', 'admin@localhost'))).condition).to.equal('conflict');
        const bad = await rejects(svc.subscribe('pubsub.x', 'n', 'bob@x', 'eve@x/r'));
        expect([bad.condition, bad.appCondition?.name]).to.deep.equal(['bad-request', 'invalid-jid']);
        await svc.subscribe('pubsub.x', 'n', 'bob@x', 'bob@x/r');
        await svc.unsubscribe('pubsub.x', 'n', 'bob@x', 'bob@x/r');
        const not = await rejects(svc.unsubscribe('pubsub.x', 'n', 'bob@x', 'bob@x/r'));
        expect([not.condition, not.appCondition?.name]).to.deep.equal(['unexpected-request', 'not-subscribed']);
        await svc.setAffiliations('pubsub.x', 'n', 'admin@localhost', [{ jid: 'bob@x', affiliation: 'outcast' }]);
        expect((await rejects(svc.subscribe('pubsub.x', 'n', 'bob@x', 'bob@x'))).condition).to.equal('forbidden');
        expect((await rejects(svc.publish('pubsub.x', 'n', 'cy@x', { id: '', publisher: 'cy@x', payload: null }, null))).condition).to.equal('forbidden');
        await svc.setAffiliations('pubsub.x', 'n', 'admin@localhost', [{ jid: 'cy@x', affiliation: 'publisher' }]);
        const r = await svc.publish('pubsub.x', 'n', 'cy@x', { id: '', publisher: 'cy@x', payload: payload('p') }, null);
        expect(r.item.id).to.match(/^[0-9a-f]{16}$/);
        await svc.configure('pubsub.x', 'n', 'admin@localhost', { 'pubsub#access_model': 'authorize' });
        const auth = await rejects(svc.subscribe('pubsub.x', 'n', 'dan@x', 'dan@x'));
        expect([auth.condition, auth.appCondition?.name, auth.appCondition?.attrs.feature]).to.deep.equal(['feature-not-implemented', 'unsupported', 'subscribe']);
      });
    });
  }
});
