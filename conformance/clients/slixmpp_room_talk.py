import asyncio, ssl, slixmpp, sys
# A slixmpp user in a room, for the web client test: joins, prints READY, waits for a message with
# the body it is told to expect (printing RECEIVED <from nick>), then posts its own and leaves.
# Usage: slixmpp_room_talk.py host port jid password room nick expect-body say-body
HOST, PORT, JID, PW, ROOM, NICK, EXPECT, SAY = sys.argv[1], int(sys.argv[2]), *sys.argv[3:9]
class C(slixmpp.ClientXMPP):
    def __init__(s):
        super().__init__(JID, PW)
        s.ssl_context.check_hostname = False; s.ssl_context.verify_mode = ssl.CERT_NONE
        s.register_plugin('xep_0045')
        s.ready = asyncio.Event(); s.got = asyncio.Event()
        s.add_event_handler('session_start', s.start)
        s.add_event_handler('groupchat_message', s.on_message)
    async def start(s, e):
        s.send_presence(); s.ready.set()
    def on_message(s, m):
        if m['body'] == EXPECT:
            print(f"RECEIVED {m['mucnick']}", flush=True); s.got.set()
async def main():
    c = C(); c.connect((HOST, PORT))
    await asyncio.wait_for(c.ready.wait(), 15)
    await c.plugin['xep_0045'].join_muc_wait(ROOM, NICK, maxstanzas=0, timeout=15)
    print('READY', flush=True)
    await asyncio.wait_for(c.got.wait(), 40)
    c.send_message(mto=ROOM, mbody=SAY, mtype='groupchat')
    print('SAID', flush=True)
    await asyncio.sleep(3)
    c.plugin['xep_0045'].leave_muc(ROOM, NICK); c.disconnect(); await asyncio.sleep(0.5)
asyncio.run(main())
