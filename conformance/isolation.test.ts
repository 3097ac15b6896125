// A handler that fails inside a real server process (here: its table is gone from under it) refuses
// the one stanza it was handling with internal-server-error; the session, the node and every other
// stanza go on, and the failure is counted in perch_handler_errors_total.
import { expect } from 'chai';
import pg from 'pg';
import {
  startServer, rawLogin, randomName, useTestDatabase, type RunningServer, type RawSession,
} from './harness.js';

function stanzaCondition(xml: string): string | undefined {
  return /<([a-z-]+) xmlns=['"]urn:ietf:params:xml:ns:xmpp-stanzas['"]/.exec(xml)?.[1];
}

describe('conformance: a failing handler refuses one stanza and nothing else (PostgreSQL)', function () {
  this.timeout(60000);
  const db = useTestDatabase('perch_iso');
  let server: RunningServer;
  const alice = randomName('iso');
  const bob = randomName('iso');
  const open: RawSession[] = [];

  before(async function () {
    if (!db.url) return;
    server = await startServer({ databaseUrl: db.url, users: { [alice]: 'pw', [bob]: 'pw' } });
  });
  after(async () => {
    for (const s of open) s.close();
    await server?.stop();
  });

  async function sql(text: string): Promise<void> {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query(text);
    } finally {
      await c.end();
    }
  }

  function reply(s: RawSession, name: string, id: string): Promise<string> {
    return s.waitFor(new RegExp(`<${name}[^>]*id=['"]${id}['"][^>]*(/>|>[\\s\\S]*?</${name}>)`), 10000);
  }

  async function handlerErrors(): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${server.ports.metrics}/metrics`)).text();
    return [...text.matchAll(/^perch_handler_errors_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
  }

  it('refuses a message whose offline store fails and an IQ whose handler fails, then serves both again', async () => {
    const a = await rawLogin(server.ports.c2s, alice, 'pw');
    open.push(a);
    const before = await handlerErrors();
    await sql('ALTER TABLE offline_messages RENAME TO offline_messages_gone');
    await sql('ALTER TABLE user_data RENAME TO user_data_gone');
    try {
      a.send(`<message id='m1' to='${bob}@localhost'><body>kept?</body></message>`);
      expect(stanzaCondition(await reply(a, 'message', 'm1'))).to.equal('internal-server-error');
      a.send(`<iq type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>`);
      expect(stanzaCondition(await reply(a, 'iq', 'v1'))).to.equal('internal-server-error');
      // Unrelated work on the same session and node goes on meanwhile.
      a.send(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
      expect(await reply(a, 'iq', 'p1')).to.match(/type=['"]result['"]/);
    } finally {
      await sql('ALTER TABLE offline_messages_gone RENAME TO offline_messages');
      await sql('ALTER TABLE user_data_gone RENAME TO user_data');
    }
    expect(await handlerErrors()).to.be.at.least(before + 2);
    a.send(`<message id='m2' to='${bob}@localhost'><body>kept</body></message>`);
    a.send(`<iq type='get' id='v2'><vCard xmlns='vcard-temp'/></iq>`);
    expect(await reply(a, 'iq', 'v2')).to.match(/type=['"]result['"]/);
    const b = await rawLogin(server.ports.c2s, bob, 'pw');
    open.push(b);
    b.send(`<presence/>`);
    const got = await b.waitFor(/<message[^>]*>[\s\S]*?<\/message>/, 10000);
    expect(got).to.include('<body>kept</body>');
    expect(a.text).to.not.match(/id=['"]m2['"][^>]*type=['"]error['"]/);
    expect(server.process.exitCode).to.equal(null);
    expect(server.logs.filter((l) => l.includes('"level":"error"')).length).to.be.at.least(2);
  });
});
