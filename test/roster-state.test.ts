import { expect } from 'chai';
import {
  inbound, outbound, normalize, isSubscriptionStanza, type SubState, type SubscriptionStanza,
} from '../src/modules/subscription-states.js';

// The nine states of RFC 6121 §A.1, by their names in the RFC.
const STATES: Record<string, SubState> = {
  'None': { subscription: 'none', pendingOut: false, pendingIn: false, approved: false },
  'None + Pending Out': { subscription: 'none', pendingOut: true, pendingIn: false, approved: false },
  'None + Pending In': { subscription: 'none', pendingOut: false, pendingIn: true, approved: false },
  'None + Pending Out+In': { subscription: 'none', pendingOut: true, pendingIn: true, approved: false },
  'To': { subscription: 'to', pendingOut: false, pendingIn: false, approved: false },
  'To + Pending In': { subscription: 'to', pendingOut: false, pendingIn: true, approved: false },
  'From': { subscription: 'from', pendingOut: false, pendingIn: false, approved: false },
  'From + Pending Out': { subscription: 'from', pendingOut: true, pendingIn: false, approved: false },
  'Both': { subscription: 'both', pendingOut: false, pendingIn: false, approved: false },
};
type StateName = keyof typeof STATES;

/** [existing state, passes (route / deliver), new state or null for "no state change"] */
type Row = [StateName, boolean, StateName | null];

function check(dir: 'outbound' | 'inbound', type: SubscriptionStanza, rows: Row[]): void {
  describe(`${dir} ${type}`, () => {
    for (const [from, pass, to] of rows) {
      it(`${from} → ${to ?? 'no state change'}${pass ? '' : `, not ${dir === 'outbound' ? 'routed' : 'delivered'}`}`, () => {
        const t = (dir === 'outbound' ? outbound : inbound)(type, STATES[from]!);
        expect(t.next).to.deep.equal(STATES[to ?? from]);
        expect(t.pass).to.equal(pass);
      });
    }
  });
}

describe('subscription states (RFC 6121 Appendix A)', () => {
  // §A.2.1
  check('outbound', 'subscribe', [
    ['None', true, 'None + Pending Out'],
    ['None + Pending Out', true, null],
    ['None + Pending In', true, 'None + Pending Out+In'],
    ['None + Pending Out+In', true, null],
    ['To', true, null],
    ['To + Pending In', true, null],
    ['From', true, 'From + Pending Out'],
    ['From + Pending Out', true, null],
    ['Both', true, null],
  ]);
  // §A.2.2
  check('outbound', 'unsubscribe', [
    ['None', true, null],
    ['None + Pending Out', true, 'None'],
    ['None + Pending In', true, null],
    ['None + Pending Out+In', true, 'None + Pending In'],
    ['To', true, 'None'],
    ['To + Pending In', true, 'None + Pending In'],
    ['From', true, null],
    ['From + Pending Out', true, 'From'],
    ['Both', true, 'From'],
  ]);
  // §A.2.3 (rows without a pending request become pre-approvals, tested below)
  check('outbound', 'subscribed', [
    ['None + Pending In', true, 'From'],
    ['None + Pending Out+In', true, 'From + Pending Out'],
    ['To + Pending In', true, 'Both'],
    ['From', false, null],
    ['From + Pending Out', false, null],
    ['Both', false, null],
  ]);
  // §A.2.4
  check('outbound', 'unsubscribed', [
    ['None', false, null],
    ['None + Pending Out', false, null],
    ['None + Pending In', true, 'None'],
    ['None + Pending Out+In', true, 'None + Pending Out'],
    ['To', false, null],
    ['To + Pending In', true, 'To'],
    ['From', true, 'None'],
    ['From + Pending Out', true, 'None + Pending Out'],
    ['Both', true, 'To'],
  ]);
  // §A.3.1 (subscribed-from rows are answered automatically, tested below)
  check('inbound', 'subscribe', [
    ['None', true, 'None + Pending In'],
    ['None + Pending Out', true, 'None + Pending Out+In'],
    ['None + Pending In', false, null],
    ['None + Pending Out+In', false, null],
    ['To', true, 'To + Pending In'],
    ['To + Pending In', false, null],
    ['From', false, null],
    ['From + Pending Out', false, null],
    ['Both', false, null],
  ]);
  // §A.3.2
  check('inbound', 'unsubscribe', [
    ['None', false, null],
    ['None + Pending Out', false, null],
    ['None + Pending In', true, 'None'],
    ['None + Pending Out+In', true, 'None + Pending Out'],
    ['To', false, null],
    ['To + Pending In', true, 'To'],
    ['From', true, 'None'],
    ['From + Pending Out', true, 'None + Pending Out'],
    ['Both', true, 'To'],
  ]);
  // §A.3.3
  check('inbound', 'subscribed', [
    ['None', false, null],
    ['None + Pending Out', true, 'To'],
    ['None + Pending In', false, null],
    ['None + Pending Out+In', true, 'To + Pending In'],
    ['To', false, null],
    ['To + Pending In', false, null],
    ['From', false, null],
    ['From + Pending Out', true, 'Both'],
    ['Both', false, null],
  ]);
  // §A.3.4
  check('inbound', 'unsubscribed', [
    ['None', false, null],
    ['None + Pending Out', true, 'None'],
    ['None + Pending In', false, null],
    ['None + Pending Out+In', true, 'None + Pending In'],
    ['To', true, 'None'],
    ['To + Pending In', true, 'None + Pending In'],
    ['From', false, null],
    ['From + Pending Out', true, 'From'],
    ['Both', true, 'From'],
  ]);

  describe('automatic replies to inbound subscribe (§3.1.3)', () => {
    for (const name of ['From', 'From + Pending Out', 'Both'] as StateName[]) {
      it(`${name}: approved again without asking the user`, () => {
        expect(inbound('subscribe', STATES[name]!).autoReply).to.equal('subscribed');
      });
    }
    for (const name of ['None', 'None + Pending In', 'To'] as StateName[]) {
      it(`${name}: left to the user`, () => {
        expect(inbound('subscribe', STATES[name]!).autoReply).to.equal(null);
      });
    }
  });

  describe('pre-approval (§3.4)', () => {
    const approved = (name: StateName): SubState => ({ ...STATES[name]!, approved: true });
    for (const name of ['None', 'None + Pending Out', 'To'] as StateName[]) {
      it(`outbound subscribed in ${name} records a pre-approval and is not routed`, () => {
        const t = outbound('subscribed', STATES[name]!);
        expect(t.next).to.deep.equal(approved(name));
        expect(t.pass).to.equal(false);
      });
    }
    it('inbound subscribe when pre-approved: None → From, approved automatically, not delivered', () => {
      const t = inbound('subscribe', approved('None'));
      expect(t.next).to.deep.equal(STATES.From);
      expect(t.pass).to.equal(false);
      expect(t.autoReply).to.equal('subscribed');
    });
    it('inbound subscribe when pre-approved: None + Pending Out → From + Pending Out', () => {
      expect(inbound('subscribe', approved('None + Pending Out')).next).to.deep.equal(STATES['From + Pending Out']);
    });
    it('inbound subscribe when pre-approved: To → Both', () => {
      expect(inbound('subscribe', approved('To')).next).to.deep.equal(STATES.Both);
    });
    it('outbound unsubscribed withdraws a pre-approval without routing', () => {
      const t = outbound('unsubscribed', approved('None'));
      expect(t.next).to.deep.equal(STATES.None);
      expect(t.pass).to.equal(false);
    });
    it('a pre-approval survives other changes', () => {
      expect(inbound('unsubscribed', approved('None + Pending Out')).next).to.deep.equal(approved('None'));
    });
  });

  describe('normalize', () => {
    it('drops flags no RFC state can hold', () => {
      expect(normalize({ subscription: 'both', pendingOut: true, pendingIn: true, approved: true })).to.deep.equal(STATES.Both);
    });
  });

  it('recognises the four subscription stanza types only', () => {
    expect(['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed'].every(isSubscriptionStanza)).to.equal(true);
    expect(isSubscriptionStanza('probe')).to.equal(false);
    expect(isSubscriptionStanza(undefined)).to.equal(false);
  });
});
