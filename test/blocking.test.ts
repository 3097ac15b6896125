import { expect } from 'chai';
import { parseJid } from '../protocol/jid.js';
import { NS } from '../protocol/namespaces.js';
import { blockedError, isBlocked } from '../src/modules/blocking.js';

describe('blocking: JID matching (XEP-0191 §3.3)', () => {
  const blocked = (list: string[], jid: string) => isBlocked(new Set(list), parseJid(jid));

  it('a full JID item matches only that resource', () => {
    expect(blocked(['romeo@example.net/orchard'], 'romeo@example.net/orchard')).to.equal(true);
    expect(blocked(['romeo@example.net/orchard'], 'romeo@example.net/garden')).to.equal(false);
    expect(blocked(['romeo@example.net/orchard'], 'romeo@example.net')).to.equal(false);
  });
  it('a bare JID item matches any resource and the bare JID', () => {
    expect(blocked(['romeo@example.net'], 'romeo@example.net/orchard')).to.equal(true);
    expect(blocked(['romeo@example.net'], 'romeo@example.net')).to.equal(true);
    expect(blocked(['romeo@example.net'], 'juliet@example.net')).to.equal(false);
  });
  it('a domain/resource item matches that resource at the domain, as XEP-0016 derives it', () => {
    expect(blocked(['example.net/bot'], 'example.net/bot')).to.equal(true);
    expect(blocked(['example.net/bot'], 'romeo@example.net/bot')).to.equal(true);
    expect(blocked(['example.net/bot'], 'example.net/other')).to.equal(false);
  });
  it('a domain item matches the domain, its users, resources and subdomains', () => {
    for (const j of ['example.net', 'romeo@example.net', 'romeo@example.net/x', 'example.net/x', 'muc.example.net', 'a@muc.example.net/b']) {
      expect(blocked(['example.net'], j), j).to.equal(true);
    }
    expect(blocked(['example.net'], 'example.org')).to.equal(false);
    expect(blocked(['example.net'], 'notexample.net')).to.equal(false);
  });
  it('an empty list blocks nothing', () => {
    expect(blocked([], 'romeo@example.net')).to.equal(false);
  });
});

describe('blocking: error for outbound stanzas to a blocked contact', () => {
  it('is not-acceptable of type cancel with <blocked/>', () => {
    const e = blockedError().toElement();
    expect(e.attrs.type).to.equal('cancel');
    expect(e.getChild('not-acceptable', NS.stanzaErrors)).to.not.equal(undefined);
    expect(e.getChild('blocked', NS.blockingErrors)).to.not.equal(undefined);
  });
});
