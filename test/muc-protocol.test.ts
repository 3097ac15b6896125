import { expect } from 'chai';
import { Element } from '../protocol/xml.js';
import {
  MUC_NS, STATUS, MucProtocolError, parseJoin, mucUserX, parseInvites, directInvite,
  parseDirectInvite, parseAdminQuery, adminQuery, parseDestroy, destroyQuery, isValidNick, prepareNick,
  isAffiliation, isRole,
} from '../protocol/muc.js';
import { parseDateTime } from '../protocol/datetime.js';
import { xml } from './xml.js';


/** The one child element of a stanza in namespace ns. */
function payload(stanza: string, ns: string): Element {
  const e = xml(stanza).getChildByNs(ns);
  if (!e) throw new Error(`no ${ns} payload`);
  return e;
}

/** Serialization with the whitespace between elements of a pretty-printed example removed. */
function compact(text: string): string {
  const strip = (e: Element): Element => {
    e.children = e.children.filter((c) => typeof c !== 'string' || c.trim() !== '').map((c) => (typeof c === 'string' ? c : strip(c)));
    return e;
  };
  return strip(xml(text)).toString();
}

function expectMucError(fn: () => unknown, condition: string): void {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(MucProtocolError);
    expect((err as MucProtocolError).condition).to.equal(condition);
    return;
  }
  expect.fail(`expected MucProtocolError ${condition}`);
}

function joinWith(x: string): Element {
  return xml(`<presence from='hag66@shakespeare.lit/pda' id='n13mt3l'
    to='coven@chat.shakespeare.lit/thirdwitch'>${x}</presence>`);
}

describe('MUC namespaces and status codes', () => {
  it('declares the namespaces', () => {
    expect(MUC_NS.muc).to.equal('http://jabber.org/protocol/muc');
    expect(MUC_NS.user).to.equal('http://jabber.org/protocol/muc#user');
    expect(MUC_NS.admin).to.equal('http://jabber.org/protocol/muc#admin');
    expect(MUC_NS.owner).to.equal('http://jabber.org/protocol/muc#owner');
    expect(MUC_NS.roominfo).to.equal('http://jabber.org/protocol/muc#roominfo');
    expect(MUC_NS.roomconfig).to.equal('http://jabber.org/protocol/muc#roomconfig');
    expect(MUC_NS.request).to.equal('http://jabber.org/protocol/muc#request');
    expect(MUC_NS.conference).to.equal('jabber:x:conference');
    expect(MUC_NS.occupantId).to.equal('urn:xmpp:occupant-id:0');
  });

  it('has every status code of §15.6.2 once', () => {
    const codes = Object.values(STATUS);
    expect([...codes].sort()).to.deep.equal(
      [100, 101, 102, 103, 104, 110, 170, 171, 172, 173, 174, 201, 210, 301, 303, 307, 321, 322, 332, 333],
    );
    expect(STATUS.selfPresence).to.equal(110);
    expect(STATUS.kicked).to.equal(307);
  });

  it('recognises affiliations and roles', () => {
    expect(isAffiliation('outcast')).to.equal(true);
    expect(isAffiliation('moderator')).to.equal(false);
    expect(isRole('visitor')).to.equal(true);
    expect(isRole('member')).to.equal(false);
  });
});

describe('parseJoin', () => {
  it('basic entry (§7.2.2)', () => {
    expect(parseJoin(joinWith("<x xmlns='http://jabber.org/protocol/muc'/>"))).to.deep.equal({});
  });

  it('returns null without the MUC extension (groupchat 1.0, presence update)', () => {
    expect(parseJoin(joinWith(''))).to.equal(null);
    expect(parseJoin(joinWith("<x xmlns='http://jabber.org/protocol/muc#user'/>"))).to.equal(null);
  });

  it('password-protected room (§7.2.6)', () => {
    const p = joinWith(`<x xmlns='http://jabber.org/protocol/muc'>
      <password>cauldronburn</password>
    </x>`);
    expect(parseJoin(p)).to.deep.equal({ password: 'cauldronburn' });
  });

  it('history limits (§7.2.14)', () => {
    const h = (attrs: string) =>
      parseJoin(joinWith(`<x xmlns='http://jabber.org/protocol/muc'><history ${attrs}/></x>`))?.history;
    expect(h("maxchars='65000'")).to.deep.equal({ maxchars: 65000 });
    expect(h("maxstanzas='20'")).to.deep.equal({ maxstanzas: 20 });
    expect(h("seconds='180'")).to.deep.equal({ seconds: 180 });
    expect(h("since='1970-01-01T00:00:00Z'")).to.deep.equal({ since: new Date(0) });
    expect(h("maxchars='0'")).to.deep.equal({ maxchars: 0 });
    expect(h("maxstanzas='20' seconds='180'")).to.deep.equal({ maxstanzas: 20, seconds: 180 });
    expect(h('')).to.deep.equal({});
  });

  it('ignores invalid history attribute values', () => {
    const h = (attrs: string) =>
      parseJoin(joinWith(`<x xmlns='http://jabber.org/protocol/muc'><history ${attrs}/></x>`))?.history;
    expect(h("maxchars='-1'")).to.deep.equal({});
    expect(h("maxstanzas='twenty'")).to.deep.equal({});
    expect(h("seconds='1.5'")).to.deep.equal({});
    expect(h("seconds=''")).to.deep.equal({});
    expect(h("maxstanzas='99999999999999999999'")).to.deep.equal({});
    expect(h("since='yesterday'")).to.deep.equal({});
    expect(h("since='2002-02-30T00:00:00Z'")).to.deep.equal({});
    expect(h("since='2002-10-13T23:58:37'")).to.deep.equal({});
    expect(h("maxchars='-5' maxstanzas='3'")).to.deep.equal({ maxstanzas: 3 });
  });

  it('password and history together', () => {
    const p = joinWith(`<x xmlns='http://jabber.org/protocol/muc'>
      <history maxstanzas='5'/><password>cauldronburn</password></x>`);
    expect(parseJoin(p)).to.deep.equal({ password: 'cauldronburn', history: { maxstanzas: 5 } });
  });
});

describe('parseDateTime (XEP-0082)', () => {
  it('parses UTC, offsets and fractions', () => {
    expect(parseDateTime('1969-07-21T02:56:15Z')?.toISOString()).to.equal('1969-07-21T02:56:15.000Z');
    expect(parseDateTime('1969-07-20T21:56:15-05:00')?.toISOString()).to.equal('1969-07-21T02:56:15.000Z');
    expect(parseDateTime('1969-07-21T02:56:15.123456Z')?.toISOString()).to.equal('1969-07-21T02:56:15.123Z');
    expect(parseDateTime('0050-01-01T00:00:00Z')?.getUTCFullYear()).to.equal(50);
  });

  it('rejects what is not a DateTime', () => {
    for (const s of ['', '1969-07-21', '1969-07-21T02:56Z', '1969-13-01T00:00:00Z', '1969-07-21T24:00:00Z',
      '1969-07-21T02:56:15+5:00', '2001-02-29T00:00:00Z']) {
      expect(parseDateTime(s), s).to.equal(null);
    }
  });
});

describe('mucUserX', () => {
  it('self-presence on entering (§7.2.3 example)', () => {
    const x = mucUserX({ items: [{ affiliation: 'member', role: 'participant' }], statuses: [STATUS.selfPresence, STATUS.nickAssigned] });
    expect(x.toString()).to.equal(compact(`<x xmlns='http://jabber.org/protocol/muc#user'>
      <item affiliation='member' role='participant'/>
      <status code='110'/>
      <status code='210'/>
    </x>`));
  });

  it('non-anonymous room presence with the real JID', () => {
    const x = mucUserX({
      items: [{ affiliation: 'owner', role: 'moderator', jid: 'crone1@shakespeare.lit/desktop' }],
    });
    expect(x.toString()).to.equal(compact(`<x xmlns='http://jabber.org/protocol/muc#user'>
      <item affiliation='owner' jid='crone1@shakespeare.lit/desktop' role='moderator'/>
    </x>`));
  });

  it('nick change (§7.6)', () => {
    const x = mucUserX({
      items: [{ affiliation: 'member', role: 'participant', jid: 'hag66@shakespeare.lit/pda', nick: 'oldhag' }],
      statuses: [STATUS.nickChanged, STATUS.selfPresence],
    });
    expect(x.toString()).to.equal(compact(`<x xmlns='http://jabber.org/protocol/muc#user'>
      <item affiliation='member' jid='hag66@shakespeare.lit/pda' nick='oldhag' role='participant'/>
      <status code='303'/>
      <status code='110'/>
    </x>`));
  });

  it('kick with actor and reason (§8.2)', () => {
    const x = mucUserX({
      items: [{ affiliation: 'none', role: 'none', actor: { nick: 'Fluellen' }, reason: 'Avaunt, you cullion!' }],
      statuses: [STATUS.selfPresence, STATUS.kicked],
    });
    expect(x.toString()).to.equal(compact(`<x xmlns='http://jabber.org/protocol/muc#user'>
      <item affiliation='none' role='none'>
        <actor nick='Fluellen'/>
        <reason>Avaunt, you cullion!</reason>
      </item>
      <status code='110'/>
      <status code='307'/>
    </x>`));
  });

  it('room destruction (§10.9)', () => {
    const x = mucUserX({
      items: [{ affiliation: 'none', role: 'none' }],
      destroy: { jid: 'coven@chat.shakespeare.lit', reason: 'Macbeth doth come.' },
    });
    expect(x.toString()).to.equal(compact(`<x xmlns='http://jabber.org/protocol/muc#user'>
      <item affiliation='none' role='none'/>
      <destroy jid='coven@chat.shakespeare.lit'>
        <reason>Macbeth doth come.</reason>
      </destroy>
    </x>`));
  });

  it('invitation from the room with the password (§7.8.2)', () => {
    const x = mucUserX({
      invite: { from: 'crone1@shakespeare.lit/desktop', reason: 'Hey Hecate, this is the place for all good witches!' },
      password: 'cauldronburn',
    });
    expect(x.toString()).to.equal(compact(`<x xmlns='http://jabber.org/protocol/muc#user'>
      <invite from='crone1@shakespeare.lit/desktop'>
        <reason>Hey Hecate, this is the place for all good witches!</reason>
      </invite>
      <password>cauldronburn</password>
    </x>`));
  });

  it('several invitations, continue, and a decline', () => {
    const x = mucUserX({
      invite: [
        { to: 'wiccarocks@shakespeare.lit/laptop', continue: { thread: 'e0ffe42b' } },
        { to: 'hag66@shakespeare.lit' },
      ],
    });
    expect(x.toString()).to.equal(
      "<x xmlns='http://jabber.org/protocol/muc#user'><invite to='wiccarocks@shakespeare.lit/laptop'>" +
      "<continue thread='e0ffe42b'/></invite><invite to='hag66@shakespeare.lit'/></x>",
    );
    const d = mucUserX({ decline: { from: 'hecate@shakespeare.lit', reason: 'Sorry' } });
    expect(d.toString()).to.equal(
      "<x xmlns='http://jabber.org/protocol/muc#user'><decline from='hecate@shakespeare.lit'><reason>Sorry</reason></decline></x>",
    );
  });

  it('children are in the muc#user namespace', () => {
    const x = mucUserX({ items: [{ affiliation: 'none', role: 'none', reason: 'r' }], statuses: [110] });
    expect(x.getChild('item', MUC_NS.user)?.getChildText('reason', MUC_NS.user)).to.equal('r');
    expect(x.getChild('status', MUC_NS.user)?.attrs.code).to.equal('110');
  });
});

describe('parseInvites', () => {
  it('invitation from the inviter to the room (§7.8.2)', () => {
    const x = payload(`<message from='crone1@shakespeare.lit/desktop' id='nzd143v8' to='coven@chat.shakespeare.lit'>
      <x xmlns='http://jabber.org/protocol/muc#user'>
        <invite to='hecate@shakespeare.lit'>
          <reason>
            Hey Hecate, this is the place for all good witches!
          </reason>
        </invite>
      </x>
    </message>`, MUC_NS.user);
    const parsed = parseInvites(x);
    expect(parsed.invites).to.have.length(1);
    expect(parsed.invites[0]!.to).to.equal('hecate@shakespeare.lit');
    expect(parsed.invites[0]!.reason?.trim()).to.equal('Hey Hecate, this is the place for all good witches!');
    expect(parsed.decline).to.equal(undefined);
  });

  it('invitation from the room to the invitee, with password', () => {
    const x = payload(`<message from='coven@chat.shakespeare.lit' id='nzd143v8' to='hecate@shakespeare.lit'>
      <x xmlns='http://jabber.org/protocol/muc#user'>
        <invite from='crone1@shakespeare.lit/desktop'><reason>Hey</reason></invite>
        <password>cauldronburn</password>
      </x>
    </message>`, MUC_NS.user);
    expect(parseInvites(x)).to.deep.equal({
      invites: [{ from: 'crone1@shakespeare.lit/desktop', reason: 'Hey' }],
      password: 'cauldronburn',
    });
  });

  it('continuing a one-to-one chat, and multiple invitees', () => {
    const x = payload(`<message from='crone1@shakespeare.lit/desktop' to='coven@chat.shakespeare.lit'>
      <x xmlns='http://jabber.org/protocol/muc#user'>
        <invite to='wiccarocks@shakespeare.lit/laptop'>
          <reason>This coven needs both wiccarocks and hag66.</reason>
          <continue thread='e0ffe42b28561960c6b12b944a092794b9683a38'/>
        </invite>
        <invite to='hag66@shakespeare.lit/pda'><continue/></invite>
      </x>
    </message>`, MUC_NS.user);
    expect(parseInvites(x).invites).to.deep.equal([
      {
        to: 'wiccarocks@shakespeare.lit/laptop',
        reason: 'This coven needs both wiccarocks and hag66.',
        continue: { thread: 'e0ffe42b28561960c6b12b944a092794b9683a38' },
      },
      { to: 'hag66@shakespeare.lit/pda', continue: {} },
    ]);
  });

  it('declined invitation (§7.8.2)', () => {
    const x = payload(`<message from='hecate@shakespeare.lit/broom' id='jk2vs61v' to='coven@chat.shakespeare.lit'>
      <x xmlns='http://jabber.org/protocol/muc#user'>
        <decline to='crone1@shakespeare.lit'>
          <reason>Sorry, I'm too busy right now.</reason>
        </decline>
      </x>
    </message>`, MUC_NS.user);
    expect(parseInvites(x)).to.deep.equal({
      invites: [],
      decline: { to: 'crone1@shakespeare.lit', reason: "Sorry, I'm too busy right now." },
    });
  });

  it('prepares addresses', () => {
    const x = xml("<x xmlns='http://jabber.org/protocol/muc#user'><invite to='Hecate@Shakespeare.LIT'/></x>");
    expect(parseInvites(x).invites[0]!.to).to.equal('hecate@shakespeare.lit');
  });

  it('round-trips mucUserX', () => {
    const opts = {
      invite: [{ to: 'a@example.com', reason: 'r', continue: { thread: 't' } }],
      decline: { from: 'b@example.com' },
      password: 'pw',
    };
    expect(parseInvites(mucUserX(opts))).to.deep.equal({ invites: opts.invite, decline: opts.decline, password: 'pw' });
  });

  it('rejects invalid invitations', () => {
    expectMucError(() => parseInvites(xml("<x xmlns='http://jabber.org/protocol/muc#user'><invite/></x>")), 'bad-request');
    expectMucError(() => parseInvites(xml("<x xmlns='http://jabber.org/protocol/muc#user'><decline><reason>no</reason></decline></x>")), 'bad-request');
    expectMucError(() => parseInvites(xml("<x xmlns='http://jabber.org/protocol/muc#user'><invite to='@bad'/></x>")), 'jid-malformed');
    expectMucError(() => parseInvites(xml("<x xmlns='http://jabber.org/protocol/muc'/>")), 'bad-request');
  });
});

describe('direct invitations (XEP-0249)', () => {
  const EXAMPLE = `<message from='crone1@shakespeare.lit/desktop' to='hecate@shakespeare.lit'>
    <x xmlns='jabber:x:conference'
       jid='darkcave@macbeth.shakespeare.lit'
       password='cauldronburn'
       reason='Hey Hecate, this is the place for all good witches!'/>
  </message>`;

  it('parses the XEP-0249 example', () => {
    expect(parseDirectInvite(payload(EXAMPLE, MUC_NS.conference))).to.deep.equal({
      jid: 'darkcave@macbeth.shakespeare.lit',
      password: 'cauldronburn',
      reason: 'Hey Hecate, this is the place for all good witches!',
    });
  });

  it('builds the XEP-0249 example', () => {
    const x = directInvite('darkcave@macbeth.shakespeare.lit', {
      password: 'cauldronburn', reason: 'Hey Hecate, this is the place for all good witches!',
    });
    expect(x.toString()).to.equal(payload(EXAMPLE, MUC_NS.conference).toString());
  });

  it('continue and thread', () => {
    const x = directInvite('darkcave@macbeth.shakespeare.lit', { continue: true, thread: 'e0ffe42b' });
    expect(x.toString()).to.equal(
      "<x xmlns='jabber:x:conference' jid='darkcave@macbeth.shakespeare.lit' continue='true' thread='e0ffe42b'/>",
    );
    expect(parseDirectInvite(x)).to.deep.equal({ jid: 'darkcave@macbeth.shakespeare.lit', continue: true, thread: 'e0ffe42b' });
    const odd = xml("<x xmlns='jabber:x:conference' jid='room@muc.example.com' continue='maybe'/>");
    expect(parseDirectInvite(odd)).to.deep.equal({ jid: 'room@muc.example.com' });
    expect(parseDirectInvite(xml("<x xmlns='jabber:x:conference' jid='room@muc.example.com' continue='0'/>")).continue)
      .to.equal(false);
  });

  it('rejects a missing or malformed room JID', () => {
    expectMucError(() => parseDirectInvite(xml("<x xmlns='jabber:x:conference' reason='hi'/>")), 'bad-request');
    expectMucError(() => parseDirectInvite(xml("<x xmlns='jabber:x:conference' jid='a@@b'/>")), 'jid-malformed');
    expectMucError(() => parseDirectInvite(xml("<x xmlns='http://jabber.org/protocol/muc#user' jid='a@b'/>")), 'bad-request');
  });
});

describe('parseAdminQuery', () => {
  const query = (items: string) => payload(`<iq from='fluellen@shakespeare.lit/pda' id='x1'
    to='harfleur@chat.shakespeare.lit' type='set'>
    <query xmlns='http://jabber.org/protocol/muc#admin'>${items}</query></iq>`, MUC_NS.admin);

  it('kicking an occupant (§8.2)', () => {
    expect(parseAdminQuery(query(`<item nick='pistol' role='none'>
        <reason>Avaunt, you cullion!</reason>
      </item>`))).to.deep.equal({ items: [{ nick: 'pistol', role: 'none', reason: 'Avaunt, you cullion!' }] });
  });

  it('banning a user (§9.1)', () => {
    expect(parseAdminQuery(query(`<item affiliation='outcast' jid='earlofcambridge@shakespeare.lit'>
        <reason>Treason</reason>
      </item>`))).to.deep.equal({
      items: [{ affiliation: 'outcast', jid: 'earlofcambridge@shakespeare.lit', reason: 'Treason' }],
    });
  });

  it('requesting the ban list, the voice list', () => {
    expect(parseAdminQuery(query("<item affiliation='outcast'/>"))).to.deep.equal({ items: [{ affiliation: 'outcast' }] });
    expect(parseAdminQuery(query("<item role='participant'/>"))).to.deep.equal({ items: [{ role: 'participant' }] });
  });

  it('modifying the member list with several items (§9.5)', () => {
    const parsed = parseAdminQuery(query(`
      <item affiliation='none' jid='hag66@shakespeare.lit'/>
      <item affiliation='member' jid='hecate@shakespeare.lit'/>`));
    expect(parsed.items).to.deep.equal([
      { affiliation: 'none', jid: 'hag66@shakespeare.lit' },
      { affiliation: 'member', jid: 'hecate@shakespeare.lit' },
    ]);
  });

  it('prepares JIDs and nicks', () => {
    const parsed = parseAdminQuery(query("<item affiliation='member' jid='Hecate@Shakespeare.lit' nick='Ha\u0308g'/>"));
    expect(parsed.items[0]!.jid).to.equal('hecate@shakespeare.lit');
    expect(parsed.items[0]!.nick).to.equal('H\u00e4g');
  });

  it('rejects invalid attribute values', () => {
    expectMucError(() => parseAdminQuery(query("<item affiliation='king' jid='a@b.c'/>")), 'bad-request');
    expectMucError(() => parseAdminQuery(query("<item role='god' nick='pistol'/>")), 'bad-request');
    expectMucError(() => parseAdminQuery(query("<item nick='pistol'/>")), 'bad-request');
    expectMucError(() => parseAdminQuery(query('')), 'bad-request');
    expectMucError(() => parseAdminQuery(query("<item affiliation='outcast' jid='a@b@c/'/>")), 'jid-malformed');
    expectMucError(() => parseAdminQuery(query("<item role='none' nick='   '/>")), 'jid-malformed');
    expectMucError(() => parseAdminQuery(xml("<query xmlns='http://jabber.org/protocol/muc#owner'/>")), 'bad-request');
  });

  it('round-trips adminQuery', () => {
    const items = [
      { affiliation: 'owner' as const, jid: 'crone1@shakespeare.lit', nick: 'thirdwitch', role: 'moderator' as const },
      { role: 'none' as const, nick: 'pistol', reason: 'out' },
    ];
    const q = adminQuery(items);
    expect(q.toString()).to.equal(
      "<query xmlns='http://jabber.org/protocol/muc#admin'>" +
      "<item affiliation='owner' jid='crone1@shakespeare.lit' nick='thirdwitch' role='moderator'/>" +
      "<item nick='pistol' role='none'><reason>out</reason></item></query>",
    );
    expect(parseAdminQuery(q).items).to.deep.equal(items);
  });

  it('errors are stanza errors with the RFC 6120 type', () => {
    let caught: unknown;
    try {
      parseAdminQuery(query("<item affiliation='king'/>"));
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(MucProtocolError);
    expect((caught as MucProtocolError).type).to.equal('modify');
    expect((caught as MucProtocolError).toElement().getChild('bad-request')).to.not.equal(undefined);
  });
});

describe('parseDestroy', () => {
  it('owner destroys the room (§10.9)', () => {
    const q = payload(`<iq from='crone1@shakespeare.lit/desktop' id='begone' to='heath@chat.shakespeare.lit' type='set'>
      <query xmlns='http://jabber.org/protocol/muc#owner'>
        <destroy jid='coven@chat.shakespeare.lit'>
          <reason>Macbeth doth come.</reason>
        </destroy>
      </query>
    </iq>`, MUC_NS.owner);
    expect(parseDestroy(q)).to.deep.equal({ jid: 'coven@chat.shakespeare.lit', reason: 'Macbeth doth come.' });
  });

  it('with password, without alternate venue', () => {
    const q = xml(`<query xmlns='http://jabber.org/protocol/muc#owner'>
      <destroy><password>cauldronburn</password></destroy></query>`);
    expect(parseDestroy(q)).to.deep.equal({ password: 'cauldronburn' });
    expect(parseDestroy(xml("<query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query>"))).to.deep.equal({});
  });

  it('returns null for a configuration query', () => {
    const q = xml("<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>");
    expect(parseDestroy(q)).to.equal(null);
  });

  it('rejects a malformed alternate venue or the wrong element', () => {
    expectMucError(() => parseDestroy(xml("<query xmlns='http://jabber.org/protocol/muc#owner'><destroy jid='a@'/></query>")), 'jid-malformed');
    expectMucError(() => parseDestroy(xml("<query xmlns='http://jabber.org/protocol/muc#admin'/>")), 'bad-request');
  });

  it('round-trips destroyQuery', () => {
    const d = { jid: 'coven@chat.shakespeare.lit', reason: 'Macbeth doth come.', password: 'pw' };
    const q = destroyQuery(d);
    expect(q.toString()).to.equal(
      "<query xmlns='http://jabber.org/protocol/muc#owner'><destroy jid='coven@chat.shakespeare.lit'>" +
      '<reason>Macbeth doth come.</reason><password>pw</password></destroy></query>',
    );
    expect(parseDestroy(q)).to.deep.equal(d);
  });
});

describe('isValidNick', () => {
  it('accepts ordinary nicks (§7.2.8)', () => {
    for (const nick of ['thirdwitch', 'Third Witch', 'oldhag', '♚', 'a/b@c', ' spaced ', 'x'.repeat(1023)]) {
      expect(isValidNick(nick), nick).to.equal(true);
    }
  });

  it('rejects empty, blank, control characters and over-long nicks', () => {
    for (const nick of ['', ' ', '   ', '\t', 'bad\u0007nick', 'x'.repeat(1024), 'é'.repeat(512)]) {
      expect(isValidNick(nick), JSON.stringify(nick).slice(0, 20)).to.equal(false);
    }
  });

  it('prepareNick normalizes to NFC and keeps case', () => {
    expect(prepareNick('Ha\u0308g')).to.equal('H\u00e4g');
    expect(prepareNick('ThirdWitch')).to.equal('ThirdWitch');
    expect(prepareNick('')).to.equal(null);
  });
});
