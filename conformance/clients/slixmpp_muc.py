import asyncio, ssl, slixmpp, sys
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath
# Rooms with a real client: two slixmpp users (alice, bob, password 'secret') use the XEP-0045 plugin
# to create, configure and join a room and talk in it, then read the room's archive with the XEP-0313
# plugin (paging and XEP-0431 full text). Run by hand: /usr/bin/python3 slixmpp_muc.py [host] [port]
HOST = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 5222
ROOM = sys.argv[3] if len(sys.argv) > 3 else 'slixroom@conference.localhost'
log = []
class C(slixmpp.ClientXMPP):
    def __init__(s, jid, pw):
        super().__init__(jid, pw)
        s.ssl_context.check_hostname = False; s.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ('xep_0030', 'xep_0045', 'xep_0059', 'xep_0313', 'xep_0004'): s.register_plugin(p)
        s.ready = asyncio.Event(); s.msgs = []
        s.add_event_handler('session_start', s.start)
        s.add_event_handler('groupchat_message', lambda m: s.msgs.append(m))
    async def start(s, e):
        s.send_presence(); await s.get_roster(); s.ready.set()
async def main():
    a = C('alice@localhost/slix', 'secret'); b = C('bob@localhost/slix', 'secret')
    for c in (a, b): c.connect((HOST, PORT))
    await asyncio.wait_for(asyncio.gather(a.ready.wait(), b.ready.wait()), 10)
    muc_a, muc_b = a.plugin['xep_0045'], b.plugin['xep_0045']
    await muc_a.join_muc_wait(ROOM, 'alice', maxstanzas=0, timeout=10)
    form = await muc_a.get_room_config(ROOM)
    fields = list(form.get_fields())
    log.append(f'alice created {ROOM}; config form has {len(fields)} fields')
    sub = a.plugin['xep_0004'].make_form(ftype='submit')
    sub.add_field(var='FORM_TYPE', value='http://jabber.org/protocol/muc#roomconfig')
    sub.add_field(var='muc#roomconfig_persistentroom', value='1')
    sub.add_field(var='muc#roomconfig_roomname', value='Slixmpp room')
    await muc_a.set_room_config(ROOM, sub)
    await muc_b.join_muc_wait(ROOM, 'bob', maxstanzas=0, timeout=10)
    log.append('roster of the room as bob sees it: ' + ', '.join(sorted(muc_b.get_roster(ROOM))))
    for i in range(12):
        a.send_message(mto=ROOM, mbody=f'apple pie number {i}' if i % 3 == 0 else f'message {i}', mtype='groupchat')
    await asyncio.sleep(1.5)
    log.append(f'bob got {len([m for m in b.msgs if m["body"]])} groupchat messages live')
    results = await b.plugin['xep_0313'].retrieve(jid=ROOM, rsm={'max': 5})
    got = [r['mam_result']['forwarded']['stanza']['body'] for r in results['mam']['results']]
    log.append(f'MAM first page of 5 from the room: {got}; fin complete={results["mam_fin"]["complete"]}')
    iq = b.make_iq_set(ito=ROOM)
    iq['mam']['queryid'] = 'ft1'
    form = iq['mam']['form']
    form['type'] = 'submit'
    form.add_field(var='FORM_TYPE', ftype='hidden', value='urn:xmpp:mam:2')
    form.add_field(var='{urn:xmpp:fulltext:0}fulltext', value='apple')
    collected = []
    b.register_handler(Callback('fulltext results', StanzaPath('message/mam_result'),
        lambda m: collected.append(m['mam_result']['forwarded']['stanza']['body']) if m['mam_result']['queryid'] == 'ft1' else None))
    await iq.send(timeout=10)
    await asyncio.sleep(0.3)
    log.append(f'full-text "apple": {collected}')
    muc_b.leave_muc(ROOM, 'bob')
    for c in (a, b): c.disconnect()
    await asyncio.sleep(1)
asyncio.run(main()); print("\n".join(log))
