// The access rules of the persistent-chat model, table-driven from the spec (persistent-chat.md §2):
// each row is one user against one room, with what every rule must answer.
import { expect } from 'chai';
import {
  affiliationOf, canCreate, existsFor, canJoin, canManage, canPost, canRead, canSee, joinRefusal, roleOf, type Subject, type RoomRules,
} from '../../src/pchat/access.js';
import { applyListEdit, canonicalPrincipal, ouLineage, parseListEdit, PrincipalError } from '../../protocol/principal.js';

const category = {
  allowed: ['domain:corp.example', 'group:partners'],
  denied: ['group:contractors', 'eve@corp.example'],
  creators: ['group:leads', 'ou:/corp/it'],
  chatHistory: true,
};

function subject(bare: string, extra: string[] = [], opts: { admin?: boolean; enabled?: boolean } = {}): Subject {
  const domain = bare.slice(bare.indexOf('@') + 1);
  return { bare, principals: new Set([bare, `domain:${domain}`, ...extra]), admin: opts.admin ?? false, enabled: opts.enabled ?? true };
}

function room(privacy: RoomRules['privacy'], type: RoomRules['type'] = 'normal', more: Partial<RoomRules> = {}): RoomRules {
  return { privacy, type, disabled: false, members: ['group:traders', 'mia@corp.example'], managers: ['max@corp.example'], presenters: ['pat@corp.example'], ...more };
}

const member = subject('mia@corp.example');
const viaGroup = subject('tom@corp.example', ['group:traders']);
const inScope = subject('ian@corp.example');
const outsider = subject('olga@elsewhere.example');
const partner = subject('paul@elsewhere.example', ['group:partners', 'group:traders']);
const denied = subject('eve@corp.example', ['group:traders']);
const contractor = subject('carl@corp.example', ['group:contractors', 'group:traders']);
const manager = subject('max@corp.example');
const presenter = subject('pat@corp.example', ['group:traders']);
const admin = subject('root@corp.example', [], { admin: true });
const off = subject('mia@corp.example', [], { enabled: false });

describe('persistent-chat access rules', () => {
  const rows: [string, Subject, RoomRules, { see: boolean; join: boolean; post: boolean; manage: boolean }][] = [
    ['member of a closed room', member, room('closed'), { see: true, join: true, post: true, manage: false }],
    ['member through a group', viaGroup, room('closed'), { see: true, join: true, post: true, manage: false }],
    ['in scope, not a member, closed', inScope, room('closed'), { see: true, join: false, post: false, manage: false }],
    ['in scope, not a member, secret', inScope, room('secret'), { see: false, join: false, post: false, manage: false }],
    ['in scope, open room', inScope, room('open'), { see: true, join: true, post: true, manage: false }],
    ['out of scope, open room', outsider, room('open'), { see: false, join: false, post: false, manage: false }],
    ['other domain allowed through a group', partner, room('closed'), { see: true, join: true, post: true, manage: false }],
    ['denied user listed as member through a group', denied, room('closed'), { see: false, join: false, post: false, manage: false }],
    ['denied group beats the allowed domain', contractor, room('open'), { see: false, join: false, post: false, manage: false }],
    ['manager who is not a member', manager, room('closed'), { see: true, join: false, post: false, manage: true }],
    ['admin who is not a member', admin, room('secret'), { see: false, join: false, post: false, manage: true }],
    ['policy off', off, room('closed'), { see: false, join: false, post: false, manage: false }],
    ['auditorium: member listens', viaGroup, room('closed', 'auditorium'), { see: true, join: true, post: false, manage: false }],
    ['auditorium: presenter speaks', presenter, room('closed', 'auditorium'), { see: true, join: true, post: true, manage: false }],
    ['auditorium: a listed presenter who is no member', subject('pat@corp.example'), room('closed', 'auditorium'), { see: true, join: false, post: false, manage: false }],
    ['disabled room', member, room('closed', 'normal', { disabled: true }), { see: false, join: false, post: false, manage: false }],
    ['room inheriting the scope', inScope, room('closed', 'normal', { members: null }), { see: true, join: true, post: true, manage: false }],
  ];
  for (const [what, s, r, want] of rows) {
    it(what, () => {
      expect({ see: canSee(s, r, category), join: canJoin(s, r, category), post: canPost(s, r, category), manage: canManage(s, r, category) }).to.deep.equal(want);
      expect(joinRefusal(s, r, category) === null).to.equal(want.join);
    });
  }

  it('refuses a join as XEP-0045 would: unseen rooms do not exist, seen ones are members-only or forbidden', () => {
    expect(joinRefusal(inScope, room('secret'), category)?.condition).to.equal('item-not-found');
    expect(joinRefusal(inScope, room('closed'), category)?.condition).to.equal('registration-required');
    expect(joinRefusal(outsider, room('open'), category)?.condition).to.equal('item-not-found');
    expect(joinRefusal(member, room('closed', 'normal', { disabled: true }), category)).to.deep.include({ condition: 'forbidden' });
  });

  it('keeps a room from existing for whoever may neither see nor manage it, but tells the denied of a room that is no secret', () => {
    expect(existsFor(inScope, room('secret'), category)).to.equal(false);
    expect(existsFor(outsider, room('closed'), category)).to.equal(false);
    expect(existsFor(denied, room('closed'), category)).to.equal(true);
    expect(existsFor(denied, room('secret'), category)).to.equal(false);
    expect(existsFor(manager, room('secret'), category)).to.equal(true);
    expect(existsFor(inScope, room('closed', 'normal', { disabled: true }), category), 'disabled, not hidden').to.equal(true);
    expect(existsFor(off, room('closed'), category)).to.equal(false);
  });

  it('maps managers to owners, members to members and the denied to outcasts', () => {
    expect(affiliationOf(manager, room('closed'), category)).to.equal('owner');
    expect(affiliationOf(member, room('closed'), category)).to.equal('member');
    expect(affiliationOf(inScope, room('open'), category)).to.equal('none');
    expect(affiliationOf(denied, room('closed'), category)).to.equal('outcast');
    expect(affiliationOf(admin, room('closed'), category)).to.equal('owner');
  });

  it('gives presenters the floor in an auditorium and everyone else a seat', () => {
    const aud = room('closed', 'auditorium');
    expect(roleOf(presenter, aud, category, affiliationOf(presenter, aud, category))).to.equal('participant');
    expect(roleOf(viaGroup, aud, category, 'member')).to.equal('visitor');
    expect(roleOf(inScope, aud, category, 'none')).to.equal('none');
  });

  it('lets creators in scope and admins create', () => {
    expect(canCreate(subject('lee@corp.example', ['group:leads']), category)).to.equal(true);
    expect(canCreate(subject('ivy@corp.example', ['ou:/corp', 'ou:/corp/it']), category)).to.equal(true);
    expect(canCreate(subject('carl@corp.example', ['group:leads', 'group:contractors']), category)).to.equal(false);
    expect(canCreate(inScope, category)).to.equal(false);
    expect(canCreate(admin, category)).to.equal(true);
    expect(canCreate(subject('lee@corp.example', ['group:leads'], { enabled: false }), category)).to.equal(false);
  });

  it('serves the archive only where the category keeps history', () => {
    expect(canRead(member, room('closed'), category)).to.equal(true);
    expect(canRead(member, room('closed'), { ...category, chatHistory: false })).to.equal(false);
    expect(canRead(inScope, room('closed'), category)).to.equal(false);
  });
});

describe('principals', () => {
  it('writes every principal in one canonical form', () => {
    expect(canonicalPrincipal('Alice@Example.ORG')).to.equal('alice@example.org');
    expect(canonicalPrincipal('group:Sales Team')).to.equal('group:sales team');
    expect(canonicalPrincipal('ou:/Corp/EMEA')).to.equal('ou:/corp/emea');
    expect(canonicalPrincipal('domain:Example.org')).to.equal('domain:example.org');
  });

  it('refuses what is not a principal, saying why', () => {
    for (const bad of ['alice@example.org/phone', 'group:', 'ou:corp', 'ou:/corp//emea', 'domain:a@b', 'nobody', 'group:a,b']) {
      expect(() => canonicalPrincipal(bad), bad).to.throw(PrincipalError);
    }
  });

  it('holds names to their length in canonical form, which lower case may lengthen (found by the fuzzer)', () => {
    // 'İ' (one UTF-16 unit) lower-cases to 'i' plus a combining dot (two): 200 of them make 400.
    for (const raw of [`ou:/${'İ'.repeat(200)}`, `group:${'İ'.repeat(200)}`]) {
      expect(() => canonicalPrincipal(raw), raw.slice(0, 8)).to.throw(PrincipalError, /longer than 256/);
    }
    const fits = canonicalPrincipal(`ou:/${'İ'.repeat(128)}`);
    expect(canonicalPrincipal(fits), 'a canonical form is accepted as it is').to.equal(fits);
  });

  it('lists an org unit and the units above it', () => {
    expect(ouLineage('/corp/emea/sales')).to.deep.equal(['/corp', '/corp/emea', '/corp/emea/sales']);
  });

  it('edits lists as the CLI writes them: +a,-b edits, a,b replaces, empty clears', () => {
    const list = ['alice@x.org', 'group:sales'];
    expect(applyListEdit(list, parseListEdit(['+bob@x.org,-group:sales']))).to.deep.equal(['alice@x.org', 'bob@x.org']);
    expect(applyListEdit(list, parseListEdit(['carol@x.org', 'group:Ops']))).to.deep.equal(['carol@x.org', 'group:ops']);
    expect(applyListEdit(list, parseListEdit(['']))).to.equal(null);
    expect(applyListEdit(null, parseListEdit(['+dan@x.org']))).to.deep.equal(['dan@x.org']);
    expect(() => parseListEdit(['a@x.org,+b@x.org'])).to.throw(PrincipalError);
  });
});
