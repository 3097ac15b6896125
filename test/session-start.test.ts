// What a login reads and writes, on an in-process server (PGlite): the modules' reads as a session is
// bound (block list, archive preferences, vCard) share one statement, also across concurrent logins;
// the initial presence makes one read (roster, waiting requests, offline count) and takes offline
// storage (a DELETE) only when that read counted messages.
import { expect } from 'chai';
import { parseJid } from '../protocol/jid.js';
import { Element } from '../protocol/xml.js';
import { NS } from '../protocol/namespaces.js';
import { addUser } from '../src/accounts.js';
import { photoHash } from '../src/modules/vcard.js';
import type { ClientSession } from '../src/c2s.js';
import type { ServerCore } from '../src/server.js';
import type { SessionRecord } from '../storage/types.js';
import { startUnitServer } from './unit-server.js';

/** A session without a socket that records what the server writes to it. */
function recordingSession(server: ServerCore, full: string) {
  const jid = parseJid(full);
  const written: string[] = [];
  const record: SessionRecord = {
    jid: full, node: server.sessions.nodeId, priority: 0, available: false, presence: null, interested: false, carbons: false, since: Date.now(),
  };
  const session = {
    jid, username: jid.local, full, bare: jid.bareString(), ip: '127.0.0.1', secure: true, record,
    data: new Map<string, unknown>(), closed: false,
    async updateRecord(change: Partial<SessionRecord>) { Object.assign(record, change); await server.sessions.put({ ...record }); },
    send(stanza: Element) { written.push(stanza.toString()); },
    sendRaw(xml: string) { written.push(xml); },
    close() {}, end() {}, replaced() {}, async moveAway() {},
  };
  return { session: session as unknown as ClientSession, written };
}

const settle = () => new Promise((r) => setTimeout(r, 50));

describe('session start: what a login reads and writes', function () {
  this.timeout(60000);
  let server: ServerCore;
  let stop: () => Promise<void>;
  let statements: string[] = [];
  /** Whose statements are counted (a contact's side of a presence sent is not the login's). */
  let watched = /ann|bob|cid/;

  before(async function () {
    ({ server, stop } = await startUnitServer('perch-session-start-'));
    for (const u of ['ann', 'bob', 'cid', 'dan']) await addUser(server.stores, server.domain, u, 'pw', 4096);
    // Every statement, whichever way it is sent (the login reads are prepared statements).
    const db = server.stores.db as { query: typeof server.stores.db.query; queryPrepared: typeof server.stores.db.queryPrepared };
    for (const way of ['query', 'queryPrepared'] as const) {
      const send = db[way].bind(db);
      db[way] = (sql, params) => {
        if (watched.test(JSON.stringify(params ?? []))) statements.push(sql.trim().split('\n')[0]!);
        return send(sql, params);
      };
    }
  });
  after(async () => { await stop?.(); });

  it('binds concurrent sessions with one statement for every module\'s part (block list, archive preferences, vCard)', async function () {
    const card = new Element('vCard', { xmlns: NS.vcard });
    card.c('PHOTO').c('BINVAL').t(Buffer.from('a picture').toString('base64'));
    await server.stores.userData.put('ann', 'vcard', 'current', card.toString());
    await server.stores.userData.put('ann', 'blocklist', 'dan@localhost', '');
    const sessions = ['ann', 'bob', 'cid'].map((u) => recordingSession(server, `${u}@${server.domain}/r`));
    statements = [];
    await Promise.all(sessions.map(({ session }) => server.bindSession(session)));
    expect(statements, statements.join('\n')).to.have.length(1);
    // the block list is in force as soon as the session is bound: dan's message to ann does not reach her
    server.router.route(new Element('message', { from: 'dan@localhost/x', to: 'ann@localhost/r', type: 'chat' }, [], NS.client).append(new Element('body').t('hi')));
    await settle();
    expect(sessions[0]!.session.data.get('vcard-photo')).to.equal(photoHash(card));
    expect(sessions[1]!.session.data.get('vcard-photo')).to.equal('');
    expect(sessions[0]!.written.filter((x) => x.includes('hi'))).to.deep.equal([]);
    for (const { session } of sessions) await server.unbindSession(session, 'test over', []);
    await settle();
  });

  it('goes online with one read when nothing waits offline, and takes offline storage only when something does', async function () {
    watched = /bob/;
    await server.stores.roster.put('bob', { jid: 'dan@localhost', name: null, subscription: 'from', askOut: false, approved: false, groups: [] });
    await server.stores.roster.putPendingIn('bob', 'dan@localhost', "<presence xmlns='jabber:client' type='subscribe' from='dan@localhost' to='bob@localhost'/>");
    const bob = recordingSession(server, `bob@${server.domain}/r`);
    await server.bindSession(bob.session);
    await settle();
    statements = [];
    await server.hooks.fire('client/presence', { session: bob.session, stanza: new Element('presence', { from: bob.session.full }, [], NS.client) });
    await settle();
    expect(statements, statements.join('\n')).to.have.length(1);
    expect(bob.written.some((x) => x.includes("type='subscribe'") && x.includes('dan@localhost'))).to.equal(true);
    await server.unbindSession(bob.session, 'test over', []);
    await settle();

    await server.stores.offline.push('bob', "<message xmlns='jabber:client' from='cid@localhost/x' to='bob@localhost' type='chat'><body>while away</body></message>", 100);
    const again = recordingSession(server, `bob@${server.domain}/r2`);
    await server.bindSession(again.session);
    await settle();
    statements = [];
    await server.hooks.fire('client/presence', { session: again.session, stanza: new Element('presence', { from: again.session.full }, [], NS.client) });
    await settle();
    expect(statements, statements.join('\n')).to.have.length(2);
    expect(statements[1]).to.equal('WITH d AS ('); // the take: DELETE … RETURNING
    expect(again.written.filter((x) => x.includes('while away'))).to.have.length(1);
    expect(await server.stores.offline.count('bob')).to.equal(0);
    await server.unbindSession(again.session, 'test over', []);
    await settle();
  });
});
