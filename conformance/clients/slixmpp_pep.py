import asyncio, ssl, sys
import xml.etree.ElementTree as ET
import slixmpp
from slixmpp.exceptions import IqError
# Real clients on PEP (XEP-0163 over XEP-0060, slixmpp's plugins): alice publishes, bob (a contact
# whose caps say +notify) is told; a second resource of bob gets the last item on login; access
# models refuse strangers and non-members; XEP-0402 bookmarks and XEP-0049 private storage stay in
# step; an XEP-0084 avatar is published and fetched by bob; a 10 kB item goes through.
# Usage: slixmpp_pep.py host port  (accounts alice, bob, carol, dave; password 'pw'). Prints RESULT lines.
HOST = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 5222
TUNE = 'http://jabber.org/protocol/tune'
BOOKMARKS = 'urn:xmpp:bookmarks:1'
D = 'localhost'

def out(s):
    print('RESULT ' + s, flush=True)

class C(slixmpp.ClientXMPP):
    def __init__(s, jid, interests=()):
        super().__init__(jid, 'pw')
        s.ssl_context.check_hostname = False; s.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ('xep_0030', 'xep_0004', 'xep_0060', 'xep_0115', 'xep_0163', 'xep_0084', 'xep_0049', 'xep_0048'):
            s.register_plugin(p)
        s.interests = interests
        s.auto_authorize = True; s.auto_subscribe = True
        s.events = asyncio.Queue()
        s.ready = asyncio.Event()
        s.add_event_handler('session_start', s.start)
        s.add_event_handler('pubsub_publish', lambda m: s.events.put_nowait(('publish', m['from'].bare, m['pubsub_event']['items']['node'], m['pubsub_event']['items']['item'])))
        s.add_event_handler('pubsub_retract', lambda m: s.events.put_nowait(('retract', m['from'].bare, m['pubsub_event']['items']['node'], m['pubsub_event']['items']['retract'])))
    async def start(s, e):
        for ns in s.interests:
            s['xep_0163'].add_interest(ns)
        await s.get_roster()
        s.send_presence()
        s.ready.set()
    async def wait_event(s, kind, node, timeout=10):
        while True:
            ev = await asyncio.wait_for(s.events.get(), timeout)
            if ev[0] == kind and ev[2] == node:
                return ev

def options(c, **fields):
    form = c['xep_0004'].make_form('submit')
    form.add_field(var='FORM_TYPE', ftype='hidden', value='http://jabber.org/protocol/pubsub#publish-options')
    for k, v in fields.items():
        form.add_field(var='pubsub#' + k, value=v)
    return form

def condition(e):
    app = [c.tag.split('}')[1] for c in e.iq['error'].xml if c.tag.startswith('{http://jabber.org/protocol/pubsub#errors}')]
    return e.iq['error']['condition'] + ('/' + app[0] if app else '')

async def connect(c):
    c.connect((HOST, PORT))
    await asyncio.wait_for(c.ready.wait(), 10)

async def main():
    alice = C(f'alice@{D}/one', (BOOKMARKS,))
    bob = C(f'bob@{D}/one', (TUNE, 'urn:xmpp:avatar:metadata'))
    carol = C(f'carol@{D}/one')
    for c in (alice, bob, carol):
        await connect(c)
    alice.send_presence_subscription(pto=f'bob@{D}')
    bob.send_presence_subscription(pto=f'alice@{D}')
    await asyncio.sleep(2)

    # Publish and notify a contact that asked (+notify in its caps).
    tune = ET.fromstring(f"<tune xmlns='{TUNE}'><title>Perch</title></tune>")
    await alice['xep_0060'].publish(None, TUNE, id='current', payload=tune)
    ev = await bob.wait_event('publish', TUNE)
    out(f"bob notified {ev[1]} {ev[2]} {ev[3]['id']} title={ev[3]['payload'].find('{%s}title' % TUNE).text}")

    # The last item on login: another resource of bob, announcing the same interest.
    bob2 = C(f'bob@{D}/two', (TUNE,))
    await connect(bob2)
    ev = await bob2.wait_event('publish', TUNE)
    out(f"bob/two last item {ev[1]} {ev[3]['id']}")

    # The last item on subscription approval: dave, a stranger who wants tunes, is approved by alice.
    dave = C(f'dave@{D}/one', (TUNE,))
    await connect(dave)
    await asyncio.sleep(0.5)
    dave.send_presence_subscription(pto=f'alice@{D}')
    ev = await dave.wait_event('publish', TUNE)
    out(f"dave approved, last item {ev[1]} {ev[3]['id']}")
    dave.disconnect()

    # Access models: presence (default) refuses a stranger; whitelist refuses a contact; open admits anyone.
    try:
        await carol['xep_0060'].get_items(f'alice@{D}', TUNE)
        out('carol read tune')
    except IqError as e:
        out('carol refused tune ' + condition(e))
    items = await bob['xep_0060'].get_items(f'alice@{D}', TUNE, max_items=1)
    out('bob reads tune ' + ','.join(i['id'] for i in items['pubsub']['items']))
    secret = ET.fromstring("<note xmlns='urn:example:note'>secret</note>")
    await alice['xep_0060'].publish(None, 'urn:example:note', id='n1', payload=secret, options=options(alice, access_model='whitelist'))
    try:
        await bob['xep_0060'].get_items(f'alice@{D}', 'urn:example:note')
        out('bob read note')
    except IqError as e:
        out('bob refused note ' + condition(e))
    try:
        await alice['xep_0060'].publish(None, 'urn:example:note', id='n2', payload=secret, options=options(alice, access_model='open'))
        out('precondition ignored')
    except IqError as e:
        out('precondition ' + condition(e))
    pub = ET.fromstring("<note xmlns='urn:example:note'>public</note>")
    await alice['xep_0060'].publish(None, 'urn:example:public', id='p1', payload=pub, options=options(alice, access_model='open'))
    items = await carol['xep_0060'].get_items(f'alice@{D}', 'urn:example:public')
    out('carol reads open ' + ','.join(i['id'] for i in items['pubsub']['items']))

    # XEP-0402 bookmarks, seen through XEP-0049 private storage, and back.
    room = f'lab@conference.{D}'
    conf = ET.fromstring(f"<conference xmlns='{BOOKMARKS}' name='Lab' autojoin='true'><nick>al</nick></conference>")
    await alice['xep_0060'].publish(None, BOOKMARKS, id=room, payload=conf,
                                    options=options(alice, persist_items='true', access_model='whitelist', max_items='max'))
    ev = await alice.wait_event('publish', BOOKMARKS)
    out(f"alice notified bookmark {ev[3]['id']} autojoin={ev[3]['payload'].get('autojoin')}")
    legacy = await alice['xep_0048'].get_bookmarks(method='xep_0049')
    confs = legacy['private']['bookmarks']['conferences']
    out('private storage ' + ','.join(f"{c['jid']}:{c['autojoin']}:{c['nick']}" for c in confs))
    bm = legacy['private']['bookmarks']
    bm.add_conference(f'ops@conference.{D}', 'al', name='Ops', autojoin=False)
    await alice['xep_0048'].set_bookmarks(bm, method='xep_0049')
    items = await alice['xep_0060'].get_items(None, BOOKMARKS)
    out('pep bookmarks ' + ','.join(sorted(i['id'] for i in items['pubsub']['items'])))
    try:
        await bob['xep_0060'].get_items(f'alice@{D}', BOOKMARKS)
        out('bob read bookmarks')
    except IqError as e:
        out('bob refused bookmarks ' + condition(e))

    # XEP-0084: data then metadata; bob is told of the metadata and fetches the data.
    png = b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 4
    avatar_id = alice['xep_0084'].generate_id(png)
    await alice['xep_0084'].publish_avatar(png)
    await alice['xep_0084'].publish_avatar_metadata([{'id': avatar_id, 'type': 'image/png', 'bytes': len(png)}])
    ev = await bob.wait_event('publish', 'urn:xmpp:avatar:metadata')
    out(f"bob notified avatar {ev[3]['id'] == avatar_id}")
    data = await bob['xep_0084'].retrieve_avatar(f'alice@{D}', avatar_id)
    got = data['pubsub']['items']['item']['avatar_data']['value']  # the plugin decodes the base64
    out(f"bob fetched avatar {got == png}")
    # XEP-0398: the avatar is alice's vCard photo too, and her next presence carries its hash.
    iq = bob.make_iq_get(ito=f'alice@{D}')
    iq.append(ET.Element('{vcard-temp}vCard'))
    card = await iq.send()
    binval = card.xml.find('{vcard-temp}vCard/{vcard-temp}PHOTO/{vcard-temp}BINVAL')
    out(f"vcard photo {binval is not None and __import__('base64').b64decode(binval.text) == png}")
    seen = asyncio.get_running_loop().create_future()
    def pres(p):
        photo = p.xml.find('{vcard-temp:x:update}x/{vcard-temp:x:update}photo')
        if p['from'].bare == f'alice@{D}' and photo is not None and photo.text and not seen.done():
            seen.set_result(photo.text)
    bob.add_event_handler('presence_available', pres)
    alice.send_presence()
    out(f"presence photo hash {await asyncio.wait_for(seen, 10) == avatar_id}")
    # XEP-0398 the other way: a photo set through vcard-temp becomes the PEP avatar, and contacts hear of it.
    png2 = b'\x89PNG\r\n\x1a\n' + bytes(range(255, -1, -1)) * 3
    id2 = alice['xep_0084'].generate_id(png2)
    vset = alice.make_iq_set()
    vset.append(ET.fromstring("<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE>"
                              f"<BINVAL>{__import__('base64').b64encode(png2).decode()}</BINVAL></PHOTO></vCard>"))
    await vset.send()
    ev = await bob.wait_event('publish', 'urn:xmpp:avatar:metadata')
    out(f"bob notified vcard avatar {ev[3]['id'] == id2}")
    data = await bob['xep_0084'].retrieve_avatar(f'alice@{D}', id2)
    out(f"bob fetched vcard avatar {data['pubsub']['items']['item']['avatar_data']['value'] == png2}")
    # Data that does not hash to the id the metadata names is not copied into the vCard (XEP-0398 §3.1).
    from slixmpp.plugins.xep_0084.stanza import Data
    bad = Data()
    bad['value'] = png
    await alice['xep_0163'].publish(bad, id='0' * 40)
    await alice['xep_0084'].publish_avatar_metadata([{'id': '0' * 40, 'type': 'image/png', 'bytes': len(png)}])
    iq = bob.make_iq_get(ito=f'alice@{D}')
    iq.append(ET.Element('{vcard-temp}vCard'))
    card = await iq.send()
    binval = card.xml.find('{vcard-temp}vCard/{vcard-temp}PHOTO/{vcard-temp}BINVAL')
    out(f"vcard keeps verified photo {binval is not None and __import__('base64').b64decode(binval.text) == png2}")

    # A 10 kB item (an OMEMO bundle's size) is stored and read back whole.
    big = ET.fromstring(f"<bundle xmlns='urn:example:bundle'>{'A' * 10240}</bundle>")
    await alice['xep_0060'].publish(None, 'urn:example:bundle', id='b', payload=big, options=options(alice, access_model='open'))
    items = await carol['xep_0060'].get_items(f'alice@{D}', 'urn:example:bundle')
    out(f"bundle {len(items['pubsub']['items']['item']['payload'].text)}")

    for c in (alice, bob, bob2, carol):
        c.disconnect()
    await asyncio.sleep(0.5)

asyncio.run(main())
