// The compliance export formats as pure functions: every event kind in the original's XmlAdapter layout,
// the Actiance layout and JSON Lines; both XML layouts validated by xmllint against the schemas kept in
// docs/compliance/; the time triple against the original's own sample values; per-room files, attachment
// manifests, presence at the period's start and end, escaping of hostile input, same input → same bytes,
// and a 100,000-event run.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseStanzaString } from '../protocol/xml-stream.js';
import type { Element } from '../protocol/xml.js';
import {
  DEFAULT_COMPLIANCE_CONFIG,
  type ComplianceConfig, type ComplianceKind, type CompliancePresence, type ComplianceRecord,
} from '../storage/types.js';
import { renderExport, presenceAfter, type ExportInput, type RoomDetails, type UserDetails } from '../src/compliance/formats.js';
import { isInternal, roomFilePart, timeTriple, userId, xmppUri } from '../src/compliance/export-model.js';
import { xmlAttr, xmlChars, xmlText } from '../src/compliance/xml-writer.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LYNC_XSD = path.join(ROOT, 'docs/compliance/perch-compliance.xsd');
const ACTIANCE_XSD = path.join(ROOT, 'docs/compliance/actiance.xsd');
const XMLLINT = '/usr/bin/xmllint';

const DOMAIN = 'example.org';
const R1 = 'dev@chat.example.org';
const R2 = 'ops@chat.example.org';
const ALICE = 'alice@example.org';
const BOB = 'bob@partner.net';
const CAROL = 'carol@eu.example.org';
const T0 = Date.UTC(2026, 11, 6, 1, 0, 0, 0);
const at = (s: number) => new Date(T0 + s * 1000);

function config(over: Partial<ComplianceConfig> = {}): ComplianceConfig {
  return { ...DEFAULT_COMPLIANCE_CONFIG, enabled: true, ...over };
}

function rec(id: number, kind: ComplianceKind, over: Partial<ComplianceRecord> = {}): ComplianceRecord {
  return { id, kind, stamp: at(id), room: R1, actor: ALICE, nick: 'alice', content: '', messageId: null, detail: null, ...over };
}

/** One event of every kind, in rooms and outside them, with an unknown downloader. */
function everyKind(): ComplianceRecord[] {
  return [
    rec(1, 'join'),
    rec(2, 'chat', { content: 'hello', messageId: 'st-2' }),
    rec(3, 'backchat', { content: 'join history: 20 messages' }),
    rec(4, 'search', { room: R2, actor: BOB, nick: null, content: 'quarterly report' }),
    rec(5, 'upload', { content: '0988239a.txt', detail: { size: 12, type: 'text/plain' } }),
    rec(6, 'download', { actor: BOB, nick: null, content: '0988239a.txt' }),
    rec(7, 'download', { room: null, actor: '', nick: null, content: '006074ca.pdf', detail: { size: 99 } }),
    rec(8, 'upload', { room: null, actor: CAROL, nick: null, content: 'personal.png' }),
    rec(9, 'part'),
  ];
}

const ROOMS = new Map<string, RoomDetails>([
  [R1, { jid: R1, name: 'Development', description: 'Where we build', category: 'Engineering', privacy: 'closed', logged: true }],
]);
const USERS = new Map<string, UserDetails>([
  [ALICE, { jid: ALICE, name: 'Alice Liddell', email: 'alice@mail.example.org' }],
  [BOB, { jid: BOB, name: null, email: null }],
]);

function input(over: Partial<ExportInput> & { cfg?: Partial<ComplianceConfig> } = {}): ExportInput {
  const { cfg, ...rest } = over;
  return {
    runId: 42, periodStart: at(-60), periodEnd: at(60), events: everyKind(), presentAtStart: {},
    rooms: ROOMS, users: USERS, domain: DOMAIN, config: config(cfg), ...rest,
  };
}

/** The document element of an export file (our own parser: the XML declaration cut off). */
function doc(content: string): Element {
  expect(content.startsWith('<?xml version="1.0" encoding="utf-8"?>\n')).to.equal(true);
  const e = parseStanzaString(content.slice(content.indexOf('\n') + 1), '');
  if (!e) throw new Error('the file does not parse');
  return e;
}

function kids(e: Element, name?: string): Element[] {
  return e.children.filter((c): c is Element => typeof c !== 'string' && (name === undefined || c.name === name));
}

function text(e: Element, name: string): string {
  const c = e.getChild(name);
  if (!c) throw new Error(`no ${name} in ${e.name}`);
  return c.children.filter((x): x is string => typeof x === 'string').join('');
}

let tmp: string;
let lint = false;

/** Validates a file with xmllint against a schema; fails with xmllint's message. */
function validate(xsd: string, content: string, name = 'file.xml'): void {
  if (!lint) return;
  const file = path.join(tmp, name);
  writeFileSync(file, content);
  try {
    execFileSync(XMLLINT, ['--noout', '--schema', xsd, file], { stdio: 'pipe' });
  } catch (e) {
    const err = e as { stderr?: Buffer };
    throw new Error(`xmllint rejected ${name}: ${err.stderr?.toString() ?? String(e)}`);
  }
}

/** What a conforming parser reads from the file at an XPath (xmllint's, not ours). */
function xpath(content: string, expr: string): string {
  const file = path.join(tmp, 'xpath.xml');
  writeFileSync(file, content);
  // xmllint ends a string result with a newline of its own.
  return execFileSync(XMLLINT, ['--xpath', expr, file], { stdio: 'pipe' }).toString('utf8').replace(/\n$/, '');
}

describe('compliance export formats', function () {
  this.timeout(120000);

  before(function () {
    tmp = mkdtempSync(path.join(tmpdir(), 'perch-compliance-formats-'));
    lint = existsSync(XMLLINT);
    if (!lint && process.env.CI === 'true') throw new Error(`${XMLLINT} is required in CI (apt-get install libxml2-utils)`);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  describe('values', () => {
    it('writes the time triple the original writes, to the millisecond', () => {
      // The original's samples (ticks carry 100 ns; Perch's stamps have milliseconds).
      for (const [ms, str, ticks] of [
        [1212610540953, '2008-06-04T20:15:40.9535482Z', 633482073409535482n],
        [1205351800522, '2008-03-12T19:56:40.522264Z', 633409486005222640n],
        [1206211842612, '2008-03-22T18:50:42.6127374Z', 633418086426127374n],
      ] as const) {
        const t = timeTriple(new Date(ms));
        expect(t.since1970).to.equal(String(ms));
        expect(BigInt(t.long) / 10000n).to.equal(ticks / 10000n);
        expect(BigInt(t.long) % 10000n).to.equal(0n);
        expect(t.string).to.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$/);
        expect(t.string.slice(0, 23)).to.equal(str.slice(0, 23));
      }
      expect(timeTriple(new Date(0))).to.deep.equal({ since1970: '0', string: '1970-01-01T00:00:00.0000000Z', long: '621355968000000000' });
    });

    it('tells internal users by domain and subdomain, and gives each user a stable id and URI', () => {
      expect(isInternal(ALICE, DOMAIN)).to.equal(true);
      expect(isInternal(CAROL, DOMAIN)).to.equal(true);
      expect(isInternal('x@EXAMPLE.org', DOMAIN)).to.equal(true);
      expect(isInternal(BOB, DOMAIN)).to.equal(false);
      expect(isInternal('x@notexample.org', DOMAIN)).to.equal(false);
      expect(isInternal('', DOMAIN)).to.equal(false);
      expect(userId(ALICE)).to.equal(userId(ALICE)).and.to.be.within(1, 0x7fffffff);
      expect(userId(ALICE)).to.not.equal(userId(BOB));
      expect(userId('')).to.equal(0);
      expect(xmppUri(ALICE)).to.equal('xmpp:alice@example.org');
      expect(xmppUri(R1, 'join')).to.equal('xmpp:dev@chat.example.org?join');
      expect(xmppUri('a#b?c@chat.example.org', 'join')).to.equal('xmpp:a%23b%3Fc@chat.example.org?join');
    });

    it('makes room file names that are safe, stable and never the same for two rooms', () => {
      expect(roomFilePart(R1)).to.equal('dev@chat.example.org');
      expect(roomFilePart(null)).to.equal('outside-rooms');
      const rooms = ['a_b@c', 'a_5Fb@c', 'A@c', 'a@c', 'é@c', '../x@c', 'a b@c', 'a/b@c', 'a\\b@c', 'x'.repeat(300) + '@c', 'x'.repeat(300) + 'y@c'];
      const parts = rooms.map(roomFilePart);
      expect(new Set(parts).size).to.equal(rooms.length);
      for (const p of parts) {
        expect(p).to.match(/^[a-z0-9.@_A-F-]+$/);
        expect(p.length).to.be.at.most(120);
      }
      expect(roomFilePart('../x@c')).to.equal('.._2Fx@c');
    });

    it('strips what XML 1.0 cannot hold and escapes the rest', () => {
      expect(xmlChars('a\u0001b\u0008c\u000bd\u001fe\ufffef\uffff')).to.equal('abcdef');
      expect(xmlChars('x\ud800y\udc00z')).to.equal('xyz');
      expect(xmlChars('😀 \t\n\r')).to.equal('😀 \t\n\r');
      expect(xmlAttr(`<a href="x">&'\t\n\r`)).to.equal(`&lt;a href=&quot;x&quot;&gt;&amp;'&#9;&#10;&#13;`);
      expect(xmlText(`<b>&"'\n\r`)).to.equal(`&lt;b&gt;&amp;"'\n&#13;`);
    });
  });

  describe('XmlAdapter layout (xml)', () => {
    it('writes every kind of event as the original did, and validates', () => {
      const out = renderExport(input());
      expect(out.files.map((f) => f.name)).to.deep.equal(['perch-compliance-000042.xml']);
      const content = out.files[0]!.content;
      validate(LYNC_XSD, content);
      const root = doc(content);
      expect(root.name).to.equal('Conversations');
      const convs = kids(root, 'Conversation');
      // Rooms in the order of their first event; the actions outside rooms last.
      expect(convs.map((c) => c.getChild('Channel')!.attrs.uri)).to.deep.equal([
        'xmpp:dev@chat.example.org?join', 'xmpp:ops@chat.example.org?join', 'xmpp:example.org',
      ]);
      expect(kids(convs[0]!).map((c) => c.name)).to.deep.equal(['Channel', 'FirstMessage', 'Messages', 'StartTimeUTC', 'EndTimeUTC']);

      const dev = convs[0]!;
      expect(dev.getChild('Channel')!.attrs).to.deep.equal({ uri: 'xmpp:dev@chat.example.org?join', name: 'Development', islogged: 'true' });
      const msgs = kids(dev.getChild('Messages')!, 'Message');
      expect(msgs.map((m) => [m.attrs.type, m.attrs.content, m.attrs.id])).to.deep.equal([
        ['JOIN', '', '0'],
        ['CHAT', 'hello', '2'],
        ['BACKCHAT', 'join history: 20 messages', '0'],
        ['FILEUPLOAD', '0988239a.txt', '0'],
        ['FILEDOWNLOAD', '0988239a.txt', '0'],
        ['PART', '', '0'],
      ]);
      expect(msgs[1]!.attrs['perch:stanzaId']).to.equal('st-2');
      expect(msgs[0]!.attrs['perch:stanzaId']).to.equal(undefined);
      // FirstMessage is the first Message again.
      const first = dev.getChild('FirstMessage')!;
      expect(first.attrs).to.deep.equal(msgs[0]!.attrs);
      expect(first.getChild('Sender')!.attrs).to.deep.equal(msgs[0]!.getChild('Sender')!.attrs);
      // Without user details: id, internal, uri (and the nick).
      expect(msgs[0]!.getChild('Sender')!.attrs).to.deep.equal({
        id: String(userId(ALICE)), internal: 'true', uri: 'xmpp:alice@example.org', 'perch:nick': 'alice',
      });
      expect(msgs[4]!.getChild('Sender')!.attrs).to.deep.equal({ id: String(userId(BOB)), internal: 'false', uri: 'xmpp:bob@partner.net' });
      const t = timeTriple(at(1));
      expect(msgs[0]!.getChild('DateTimeUTC')!.attrs).to.deep.equal({ since1970: t.since1970, string: t.string, long: t.long });
      expect(dev.getChild('StartTimeUTC')!.attrs.since1970).to.equal(String(T0 + 1000));
      expect(dev.getChild('EndTimeUTC')!.attrs.since1970).to.equal(String(T0 + 9000));

      // A search is a BACKCHAT marked as one; a room without details is named by its localpart.
      const ops = convs[1]!;
      expect(ops.getChild('Channel')!.attrs).to.deep.equal({ uri: 'xmpp:ops@chat.example.org?join', name: 'ops', islogged: '' });
      const search = kids(ops.getChild('Messages')!, 'Message')[0]!;
      expect(search.attrs).to.deep.equal({ type: 'BACKCHAT', content: 'quarterly report', id: '0', 'perch:kind': 'search' });

      // Outside rooms: the deployment's channel; the unknown downloader is still a valid Sender.
      const outside = convs[2]!;
      expect(outside.getChild('Channel')!.attrs).to.deep.equal({ uri: 'xmpp:example.org', name: 'example.org', islogged: 'false' });
      const [anon, personal] = kids(outside.getChild('Messages')!, 'Message');
      expect(anon!.attrs).to.deep.equal({ type: 'FILEDOWNLOAD', content: '006074ca.pdf', id: '0' });
      expect(anon!.getChild('Sender')!.attrs).to.deep.equal({ id: '0', internal: 'false', uri: '' });
      expect(personal!.attrs.type).to.equal('FILEUPLOAD');
      expect(personal!.getChild('Sender')!.attrs.internal).to.equal('true');
    });

    it('adds room and user details only when configured', () => {
      const content = renderExport(input({ cfg: { addRoomDetails: true, addUserDetails: true } })).files[0]!.content;
      validate(LYNC_XSD, content);
      const dev = kids(doc(content), 'Conversation')[0]!;
      expect(dev.getChild('Channel')!.attrs).to.deep.equal({
        uri: 'xmpp:dev@chat.example.org?join', name: 'Development', islogged: 'true',
        'perch:description': 'Where we build', 'perch:category': 'Engineering', 'perch:privacy': 'closed',
      });
      const msgs = kids(dev.getChild('Messages')!, 'Message');
      expect(msgs[0]!.getChild('Sender')!.attrs).to.deep.equal({
        UserName: 'Alice Liddell', id: String(userId(ALICE)), email: 'alice@mail.example.org', internal: 'true',
        uri: 'xmpp:alice@example.org', 'perch:nick': 'alice',
      });
      // Known user without name or email: neither attribute.
      expect(msgs[4]!.getChild('Sender')!.attrs).to.not.have.any.keys('UserName', 'email');
    });

    it('has schemas that refuse what the layouts do not allow', function () {
      if (!lint) this.skip();
      const xml = renderExport(input()).files[0]!.content;
      expect(() => validate(LYNC_XSD, xml.replace('type="JOIN"', 'type="KICK"'))).to.throw(/xmllint rejected/);
      expect(() => validate(LYNC_XSD, xml.replace(/ id="\d+" internal/, ' internal'))).to.throw(/xmllint rejected/);
      expect(() => validate(LYNC_XSD, xml.replace('perch:stanzaId=', 'perch:stanzaID='))).to.throw(/xmllint rejected/);
      const actiance = renderExport(input({ cfg: { format: 'actiance' } })).files[0]!.content;
      expect(() => validate(ACTIANCE_XSD, actiance.replace('<Status>Completed</Status>', '<Status>Failed</Status>'))).to.throw(/xmllint rejected/);
      expect(() => validate(ACTIANCE_XSD, xml)).to.throw(/xmllint rejected/);
    });

    it('writes an empty run as an empty, valid file', () => {
      const out = renderExport(input({ events: [] }));
      expect(out.files).to.have.length(1);
      validate(LYNC_XSD, out.files[0]!.content);
      expect(kids(doc(out.files[0]!.content))).to.have.length(0);
      expect(renderExport(input({ events: [], cfg: { oneRoomPerFile: true } })).files).to.deep.equal([]);
    });
  });

  describe('Actiance layout (actiance)', () => {
    const presentAtStart: Record<string, CompliancePresence[]> = {
      [R1]: [{ actor: CAROL, nick: 'carol' }, { actor: CAROL, nick: 'carol-phone' }],
      // A room with people present and nothing happening still gets its records.
      'quiet@chat.example.org': [{ actor: BOB, nick: 'bob' }],
    };

    it('writes the sample XSLT\'s elements for every kind, with presence at the period\'s start and end, and validates', () => {
      const out = renderExport(input({ presentAtStart, cfg: { format: 'actiance', addUserDetails: true } }));
      expect(out.files.map((f) => f.name)).to.deep.equal(['perch-compliance-000042.xml']);
      const content = out.files[0]!.content;
      validate(ACTIANCE_XSD, content);
      const root = doc(content);
      expect(root.name).to.equal('FileDump');
      const convs = kids(root, 'Conversation');
      expect(convs.map((c) => text(c, 'RoomID'))).to.deep.equal(['Development', 'ops', 'quiet', 'example.org']);
      const dev = convs[0]!;
      expect(dev.attrs).to.deep.equal({ Perspective: 'Development_group_channel' });
      expect(text(dev, 'StartTimeUTC')).to.equal(String(T0 - 60000));
      expect(text(dev, 'EndTimeUTC')).to.equal(String(T0 + 60000));
      const body = kids(dev);
      expect(body.map((c) => c.name)).to.deep.equal([
        'RoomID', 'StartTimeUTC',
        'ParticipantEntered', // carol, present at the start (once, though under two nicks)
        'ParticipantEntered', // alice joins
        'Message', 'Message', // chat, backchat
        'FileTransferStarted', 'FileTransferEnded', // upload
        'FileTransferStarted', 'FileTransferEnded', // download
        'ParticipantLeft', // alice parts
        'ParticipantLeft', // carol, still present at the end
        'EndTimeUTC',
      ]);
      const [startEntered, join] = [body[2]!, body[3]!];
      expect(kids(startEntered).map((c) => c.name)).to.deep.equal(['LoginName', 'DateTimeUTC', 'InternalFlag', 'ConversationID', 'CorporateEmailID']);
      expect(text(startEntered, 'LoginName')).to.equal(CAROL);
      expect(text(startEntered, 'DateTimeUTC')).to.equal(String(T0 - 60000));
      expect(text(join, 'LoginName')).to.equal(ALICE);
      expect(text(join, 'DateTimeUTC')).to.equal(String(T0 + 1000));
      expect(text(join, 'InternalFlag')).to.equal('true');
      expect(text(join, 'ConversationID')).to.equal('Development');
      expect(text(join, 'CorporateEmailID')).to.equal('alice@mail.example.org');
      expect(text(body[4]!, 'Content')).to.equal('hello');
      expect(kids(body[4]!).map((c) => c.name)).to.deep.equal(['LoginName', 'DateTimeUTC', 'Content']);
      expect(text(body[5]!, 'Content')).to.equal('join history: 20 messages');
      expect(kids(body[6]!).map((c) => c.name)).to.deep.equal(['LoginName', 'DateTimeUTC', 'FileName']);
      expect(kids(body[7]!).map((c) => c.name)).to.deep.equal(['LoginName', 'DateTimeUTC', 'FileName', 'Status']);
      expect(text(body[7]!, 'FileName')).to.equal('0988239a.txt');
      expect(text(body[7]!, 'Status')).to.equal('Completed');
      expect(text(body[8]!, 'LoginName')).to.equal(BOB);
      expect(text(body[11]!, 'LoginName')).to.equal(CAROL);
      expect(text(body[11]!, 'DateTimeUTC')).to.equal(String(T0 + 60000));

      // The search is a Message; the quiet room has its two presence records only.
      expect(kids(convs[1]!).map((c) => c.name)).to.deep.equal(['RoomID', 'StartTimeUTC', 'Message', 'EndTimeUTC']);
      const quiet = kids(convs[2]!).map((c) => c.name);
      expect(quiet).to.deep.equal(['RoomID', 'StartTimeUTC', 'ParticipantEntered', 'ParticipantLeft', 'EndTimeUTC']);
      expect(text(kids(convs[2]!, 'ParticipantEntered')[0]!, 'InternalFlag')).to.equal('false');
      // Outside rooms: the unknown downloader has an empty LoginName.
      const outside = kids(convs[3]!, 'FileTransferStarted');
      expect(outside.map((e) => text(e, 'LoginName'))).to.deep.equal(['', CAROL]);
      expect(outside.map((e) => text(e, 'FileName'))).to.deep.equal(['006074ca.pdf', 'personal.png']);

      expect(out.presentAtEnd).to.deep.equal(presenceAfter(presentAtStart, everyKind()));
    });

    it('stretches the conversation to events stamped outside the period, and adds room details when configured', () => {
      const content = renderExport(input({
        periodStart: at(3), periodEnd: at(5), events: everyKind().filter((e) => e.room === R1), cfg: { format: 'actiance', addRoomDetails: true },
      })).files[0]!.content;
      validate(ACTIANCE_XSD, content);
      const dev = kids(doc(content), 'Conversation')[0]!;
      expect(text(dev, 'StartTimeUTC')).to.equal(String(T0 + 1000));
      expect(text(dev, 'EndTimeUTC')).to.equal(String(T0 + 9000));
      expect(dev.attrs).to.deep.equal({
        Perspective: 'Development_group_channel', 'perch:description': 'Where we build', 'perch:category': 'Engineering', 'perch:privacy': 'closed',
      });
      expect(text(kids(dev, 'ParticipantEntered')[0]!, 'CorporateEmailID')).to.equal('');
    });
  });

  describe('JSON Lines (jsonl)', () => {
    it('writes one object per event with every field, keys in a fixed order', () => {
      const out = renderExport(input({ cfg: { format: 'jsonl' } }));
      expect(out.files.map((f) => f.name)).to.deep.equal(['perch-compliance-000042.jsonl']);
      const lines = out.files[0]!.content.split('\n');
      expect(lines.pop()).to.equal('');
      expect(lines).to.have.length(9);
      const objs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(objs.map((o) => o.kind)).to.deep.equal(['join', 'chat', 'backchat', 'search', 'upload', 'download', 'download', 'upload', 'part']);
      expect(Object.keys(objs[0]!)).to.deep.equal(['id', 'stamp', 'kind', 'room', 'actor', 'nick', 'internal', 'content', 'messageId', 'detail']);
      expect(objs[1]).to.deep.equal({
        id: 2, stamp: at(2).toISOString(), kind: 'chat', room: R1, actor: ALICE, nick: 'alice', internal: true,
        content: 'hello', messageId: 'st-2', detail: null,
      });
      expect(lines[4]).to.contain('"detail":{"size":12,"type":"text/plain"}');
      expect(objs[6]).to.include({ room: null, actor: '', internal: false });
    });

    it('adds room and user details when configured', () => {
      const lines = renderExport(input({ cfg: { format: 'jsonl', addRoomDetails: true, addUserDetails: true } })).files[0]!.content.trim().split('\n');
      const objs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(Object.keys(objs[0]!).slice(-2)).to.deep.equal(['roomDetails', 'userDetails']);
      expect(objs[0]!.roomDetails).to.deep.equal({ name: 'Development', description: 'Where we build', category: 'Engineering', privacy: 'closed', logged: true });
      expect(objs[0]!.userDetails).to.deep.equal({ name: 'Alice Liddell', email: 'alice@mail.example.org' });
      expect(objs[3]!.roomDetails).to.equal(null); // a room without details
      expect(objs[6]).to.not.have.any.keys('roomDetails', 'userDetails'); // outside rooms, unknown user
      expect(objs[7]!.userDetails).to.equal(null); // a user without details
    });
  });

  describe('files', () => {
    it('writes one file per room with oneRoomPerFile, the actions outside rooms in their own', () => {
      for (const format of ['xml', 'actiance', 'jsonl'] as const) {
        const ext = format === 'jsonl' ? 'jsonl' : 'xml';
        const out = renderExport(input({ presentAtStart: { 'quiet@chat.example.org': [{ actor: BOB, nick: 'b' }] }, cfg: { format, oneRoomPerFile: true } }));
        const names = [
          `perch-compliance-000042-dev@chat.example.org.${ext}`,
          `perch-compliance-000042-ops@chat.example.org.${ext}`,
          ...(format === 'actiance' ? [`perch-compliance-000042-quiet@chat.example.org.${ext}`] : []),
          `perch-compliance-000042-outside-rooms.${ext}`,
        ];
        expect(out.files.map((f) => f.name), format).to.deep.equal(names);
        for (const f of out.files) {
          if (format === 'jsonl') {
            const rooms = new Set(f.content.trim().split('\n').map((l) => (JSON.parse(l) as { room: string | null }).room));
            expect(rooms.size).to.equal(1);
            continue;
          }
          validate(format === 'xml' ? LYNC_XSD : ACTIANCE_XSD, f.content, f.name);
          expect(kids(doc(f.content), 'Conversation')).to.have.length(1);
        }
      }
    });

    it('writes an attachment manifest beside each file whose events moved files, when configured', () => {
      expect(renderExport(input()).files.map((f) => f.name)).to.deep.equal(['perch-compliance-000042.xml']);
      const whole = renderExport(input({ cfg: { attachmentsManifest: true } }));
      expect(whole.files.map((f) => f.name)).to.deep.equal(['perch-compliance-000042.xml', 'perch-compliance-000042.attach.json']);
      const m = JSON.parse(whole.files[1]!.content) as { format: string; version: number; runId: number; file: string; transfers: Record<string, unknown>[] };
      expect(m).to.include({ format: 'perch-compliance-attachments', version: 1, runId: 42, file: 'perch-compliance-000042.xml' });
      expect(m.transfers.map((t) => [t.id, t.kind, t.file])).to.deep.equal([
        [5, 'upload', '0988239a.txt'], [6, 'download', '0988239a.txt'], [7, 'download', '006074ca.pdf'], [8, 'upload', 'personal.png'],
      ]);
      expect(m.transfers[0]).to.deep.equal({
        id: 5, kind: 'upload', stamp: at(5).toISOString(), room: R1, actor: ALICE, nick: 'alice', file: '0988239a.txt', detail: { size: 12, type: 'text/plain' },
      });

      // Per room: only the files with transfers get one, listing their own.
      const split = renderExport(input({ cfg: { format: 'jsonl', oneRoomPerFile: true, attachmentsManifest: true } }));
      expect(split.files.map((f) => f.name)).to.deep.equal([
        'perch-compliance-000042-dev@chat.example.org.jsonl', 'perch-compliance-000042-dev@chat.example.org.attach.json',
        'perch-compliance-000042-ops@chat.example.org.jsonl',
        'perch-compliance-000042-outside-rooms.jsonl', 'perch-compliance-000042-outside-rooms.attach.json',
      ]);
      const outside = JSON.parse(split.files[4]!.content) as { file: string; transfers: { id: number }[] };
      expect(outside.file).to.equal('perch-compliance-000042-outside-rooms.jsonl');
      expect(outside.transfers.map((t) => t.id)).to.deep.equal([7, 8]);
    });

    it('renders the same input to the same names and bytes', () => {
      for (const format of ['xml', 'actiance', 'jsonl'] as const) {
        for (const oneRoomPerFile of [false, true]) {
          const cfg = { format, oneRoomPerFile, addRoomDetails: true, addUserDetails: true, attachmentsManifest: true };
          const presentAtStart = { [R1]: [{ actor: CAROL, nick: 'c' }] };
          const a = renderExport(input({ presentAtStart, cfg }));
          // A fresh copy of everything, as a repeated run reads it back from the database.
          const b = renderExport(input({
            presentAtStart: JSON.parse(JSON.stringify(presentAtStart)) as typeof presentAtStart,
            events: everyKind().map((e) => ({ ...e, stamp: new Date(e.stamp.getTime()), detail: e.detail && { ...e.detail } })),
            rooms: new Map(ROOMS), users: new Map(USERS), cfg,
          }));
          expect(b).to.deep.equal(a);
        }
      }
    });
  });

  describe('escaping', () => {
    const nasty = `"quotes' <tag> & &amp; ]]> \u0001\u0008\u000b\u001f \ud800 lone \udfff emoji 😀 é\ttab\nnewline\r\ncrlf \ufffe`;
    const clean = xmlChars(nasty);

    function nastyInput(format: 'xml' | 'actiance'): ExportInput {
      const room = 'we"ird&<room>@chat.example.org';
      const actor = 'o\'brien&co@example.org';
      return input({
        events: [
          rec(1, 'join', { room, actor, nick: nasty }),
          rec(2, 'chat', { room, actor, nick: nasty, content: nasty, messageId: nasty }),
          rec(3, 'search', { room, actor, content: nasty }),
          rec(4, 'upload', { room, actor, content: nasty }),
          rec(5, 'download', { room: null, actor: '', nick: null, content: nasty }),
        ],
        presentAtStart: { [room]: [{ actor: `x${nasty}@example.org`, nick: nasty }] },
        rooms: new Map([[room, { jid: room, name: nasty, description: nasty, category: nasty, privacy: nasty, logged: false }]]),
        users: new Map([[actor, { jid: actor, name: nasty, email: nasty }]]),
        cfg: { format, addRoomDetails: true, addUserDetails: true },
      });
    }

    it('keeps the XmlAdapter file valid and the text intact but for what XML cannot hold', function () {
      expect(clean).to.equal(`"quotes' <tag> & &amp; ]]>   lone  emoji 😀 é\ttab\nnewline\r\ncrlf `);
      const content = renderExport(nastyInput('xml')).files[0]!.content;
      validate(LYNC_XSD, content);
      const conv = kids(doc(content), 'Conversation')[0]!;
      const channel = conv.getChild('Channel')!;
      expect(channel.attrs.name).to.equal(clean);
      expect(channel.attrs['perch:description']).to.equal(clean);
      const chat = kids(conv.getChild('Messages')!, 'Message')[1]!;
      expect(chat.attrs.content).to.equal(clean);
      expect(chat.attrs['perch:stanzaId']).to.equal(clean);
      expect(chat.getChild('Sender')!.attrs).to.include({ UserName: clean, email: clean, 'perch:nick': clean, uri: "xmpp:o'brien%26co@example.org" });
      if (!lint) this.skip();
      // A conforming parser reads back the same text: tabs, newlines and carriage returns included.
      expect(xpath(content, 'string(//Messages/Message[@type="CHAT"]/@content)')).to.equal(clean);
      expect(xpath(content, 'string(//Channel/@name)')).to.equal(clean);
    });

    it('keeps the Actiance file valid and the text intact but for what XML cannot hold', function () {
      const content = renderExport(nastyInput('actiance')).files[0]!.content;
      validate(ACTIANCE_XSD, content);
      const conv = kids(doc(content), 'Conversation')[0]!;
      expect(conv.attrs.Perspective).to.equal(`${clean}_group_channel`);
      expect(text(conv, 'RoomID')).to.equal(clean);
      expect(text(kids(conv, 'Message')[0]!, 'Content')).to.equal(clean);
      expect(text(kids(conv, 'FileTransferEnded')[0]!, 'FileName')).to.equal(clean);
      expect(text(kids(conv, 'ParticipantEntered')[0]!, 'LoginName')).to.equal(xmlChars(`x${nasty}@example.org`));
      if (!lint) this.skip();
      expect(xpath(content, 'string(//Conversation[1]/Message[1]/Content)')).to.equal(clean);
    });

    it('keeps everything in JSON Lines, each line one valid JSON value', () => {
      const content = renderExport({ ...nastyInput('xml'), config: config({ format: 'jsonl', addRoomDetails: true, addUserDetails: true }) }).files[0]!.content;
      const lines = content.split('\n');
      expect(lines.pop()).to.equal('');
      expect(lines).to.have.length(5);
      const chat = JSON.parse(lines[1]!) as { content: string; nick: string };
      expect(chat.content).to.equal(nasty);
      expect(chat.nick).to.equal(nasty);
    });
  });

  describe('size', () => {
    it('renders a run of 100,000 events in every format', function () {
      const rooms = Array.from({ length: 50 }, (_, i) => `room${i}@chat.example.org`);
      const kinds: ComplianceKind[] = ['join', 'chat', 'chat', 'chat', 'chat', 'chat', 'backchat', 'search', 'upload', 'download', 'part'];
      const events: ComplianceRecord[] = [];
      for (let i = 1; i <= 100_000; i++) {
        const kind = kinds[i % kinds.length]!;
        const actor = `user${i % 500}@${i % 7 === 0 ? 'partner.net' : DOMAIN}`;
        events.push({
          id: i, kind, stamp: new Date(T0 + i * 10), room: i % 97 === 0 ? null : rooms[i % rooms.length]!, actor, nick: `nick${i % 500}`,
          content: kind === 'chat' ? `message ${i} with <some> & "text" to escape, and a bit more to be a typical line` : `file-${i}.txt`,
          messageId: kind === 'chat' ? `stanza-${i}` : null, detail: kind === 'upload' ? { size: i, type: 'text/plain' } : null,
        });
      }
      const sizes: string[] = [];
      for (const format of ['xml', 'actiance', 'jsonl'] as const) {
        for (const oneRoomPerFile of [false, true]) {
          const started = process.hrtime.bigint();
          const out = renderExport(input({ events, cfg: { format, oneRoomPerFile, addRoomDetails: true, addUserDetails: true, attachmentsManifest: true } }));
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          const bytes = out.files.reduce((n, f) => n + f.content.length, 0);
          sizes.push(`${format}${oneRoomPerFile ? '/per-room' : ''}: ${ms.toFixed(0)} ms, ${out.files.length} files, ${(bytes / 1e6).toFixed(1)} M chars`);
          expect(out.files.length).to.be.greaterThan(0);
        }
      }
      // Reported, not asserted: the time depends on the machine.
      console.log(`      100,000 events: ${sizes.join('; ')}`);
    });
  });
});
