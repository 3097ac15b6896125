import { expect } from 'chai';
import { withConfig as configOf, errorOf } from './config-kit.js';
import { LDAP_MARK, normaliseDn, ouOfDn, planSync, rdns, type DirectoryState, type LdapSnapshot } from '../src/directory/ldap-sync.js';

describe('directory: LDAP config', () => {
  it('off by default; defaults for groupOfNames, uid, hourly sync and local passwords', async () => {
    expect((await configOf('domain: example.com\n')).directory.ldap).to.equal(null);
    const c = await configOf('directory:\n  ldap:\n    url: ldap://ldap.example.com:389\n    baseDn: dc=example,dc=com\n');
    expect(c.directory.ldap).to.include({
      userFilter: '(objectClass=inetOrgPerson)', userIdAttribute: 'uid', groupFilter: '(objectClass=groupOfNames)',
      memberAttribute: 'member', ouFromDn: true, syncIntervalMinutes: 60, auth: 'local', bindDn: null,
    });
  });

  it('refuses what it cannot use, naming the key', async () => {
    const base = 'directory:\n  ldap:\n    baseDn: dc=x\n';
    expect(await errorOf(`${base}    url: http://x\n`)).to.include('directory.ldap.url');
    expect(await errorOf(`${base}    url: ldap://x\n    memberAttribute: uniquemember2\n`)).to.include('directory.ldap.memberAttribute');
    expect(await errorOf(`${base}    url: ldap://x\n    userFilter: objectClass=person\n`)).to.include('directory.ldap.userFilter');
    expect(await errorOf(`${base}    url: ldap://x\n    auth: kerberos\n`)).to.include('directory.ldap.auth');
    expect(await errorOf(`${base}    url: ldap://x\n    bindPassword: a\n    bindPasswordFile: /f\n`)).to.include('not both');
    expect(await errorOf(`${base}    url: ldap://x\n    colour: blue\n`)).to.include('directory.ldap.colour: unknown key');
  });
});

describe('directory: LDAP mapping and plan', () => {
  it('org units from a DN, outermost first; DNs compared without case or spaces', () => {
    expect(ouOfDn('uid=bob,ou=Sales,ou=People,dc=example,dc=com')).to.equal('/people/sales');
    expect(ouOfDn('uid=bob,dc=example,dc=com')).to.equal(null);
    expect(normaliseDn('CN=Desk, OU=Groups ,dc=Example,dc=com')).to.equal('cn=desk,ou=groups,dc=example,dc=com');
    expect(rdns('cn=Smith\\, J,ou=x')).to.deep.equal([['cn', 'Smith, J'], ['ou', 'x']]);
  });

  const snapshot: LdapSnapshot = {
    users: [
      { dn: 'uid=a,ou=t,ou=p,dc=x', jid: 'a@x', ou: '/p/t' },
      { dn: 'uid=b,ou=p,dc=x', jid: 'b@x', ou: '/p' },
    ],
    groups: [
      { dn: 'cn=inner,dc=x', name: 'inner', members: ['b@x'] },
      { dn: 'cn=outer,dc=x', name: 'outer', members: ['a@x', 'group:inner'] },
      { dn: 'cn=mine,dc=x', name: 'mine', members: ['a@x'] },
    ],
    warnings: [],
  };

  it('a first sync: units on every path, groups, members (nested as group keys), moves', () => {
    const state: DirectoryState = { groups: new Map([['mine', { description: 'an admin group', members: [] }]]), units: new Map(), userUnits: new Map([['a@x', null], ['b@x', null]]) };
    const plan = planSync(snapshot, state, { ouFromDn: true });
    expect(plan.unitsAdded.map((u) => u.path)).to.deep.equal(['/p', '/p/t']);
    expect(plan.unitsAdded[1]!.dn).to.equal('ou=t,ou=p,dc=x');
    expect(plan.groupsAdded.map((g) => g.name)).to.deep.equal(['inner', 'outer']);
    expect(plan.membersAdded).to.deep.equal([{ group: 'inner', member: 'b@x' }, { group: 'outer', member: 'a@x' }, { group: 'outer', member: 'group:inner' }]);
    expect(plan.moves).to.deep.equal([{ user: 'a@x', from: null, to: '/p/t' }, { user: 'b@x', from: null, to: '/p' }]);
    expect(plan.warnings.join()).to.include('group:mine exists and was not made by the LDAP sync');
  });

  it('later: members gone, groups gone, users who left the directory out of its units, empty units deleted deepest first', () => {
    const state: DirectoryState = {
      groups: new Map([
        ['inner', { description: `${LDAP_MARK}cn=inner,dc=x`, members: ['b@x', 'c@x'] }],
        ['outer', { description: `${LDAP_MARK}cn=outer,dc=x`, members: ['a@x', 'group:inner'] }],
        ['old', { description: `${LDAP_MARK}cn=old,dc=x`, members: [] }],
        ['mine', { description: `${LDAP_MARK}cn=mine,dc=x`, members: ['a@x'] }],
      ]),
      units: new Map([['/p', `${LDAP_MARK}ou=p,dc=x`], ['/p/t', `${LDAP_MARK}ou=t,ou=p,dc=x`], ['/q', `${LDAP_MARK}ou=q,dc=x`], ['/q/r', `${LDAP_MARK}ou=r,ou=q,dc=x`], ['/admin', 'made by hand']]),
      userUnits: new Map([['a@x', '/p/t'], ['b@x', '/p'], ['c@x', '/q/r'], ['d@x', '/admin']]),
    };
    const plan = planSync(snapshot, state, { ouFromDn: true });
    expect(plan.membersRemoved).to.deep.equal([{ group: 'inner', member: 'c@x' }]);
    expect(plan.membersAdded).to.deep.equal([]);
    expect(plan.groupsRemoved).to.deep.equal(['old']);
    expect(plan.moves).to.deep.equal([{ user: 'c@x', from: '/q/r', to: null }]);
    expect(plan.unitsRemoved).to.deep.equal(['/q/r', '/q']);
  });

  it('with ouFromDn off, units and users are left alone', () => {
    const plan = planSync(snapshot, { groups: new Map(), units: new Map(), userUnits: new Map([['a@x', '/elsewhere']]) }, { ouFromDn: false });
    expect([plan.unitsAdded, plan.moves, plan.unitsRemoved]).to.deep.equal([[], [], []]);
  });
});
