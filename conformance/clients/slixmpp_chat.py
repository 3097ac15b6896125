import asyncio, os, ssl, slixmpp, sys
# A real client end to end: two slixmpp users (alice, bob, password 'secret') subscribe to each other,
# see presence and chat. Run by hand against a server: /usr/bin/python3 slixmpp_chat.py [host] [port]
HOST = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 5222
log=[]
class C(slixmpp.ClientXMPP):
    def __init__(s, jid, pw, peer):
        super().__init__(jid, pw); s.peer=peer; s.got=asyncio.Event(); s.pres=asyncio.Event()
        s.ssl_context.check_hostname=False; s.ssl_context.verify_mode=ssl.CERT_NONE
        s.add_event_handler('session_start', s.start); s.add_event_handler('message', s.msg)
        s.add_event_handler('presence_available', s.avail)
        s.auto_authorize=True; s.auto_subscribe=True
    async def start(s, e):
        s.send_presence(); await s.get_roster()
    def msg(s, m):
        if m['type'] in ('chat','normal'): log.append(f"{s.boundjid.bare} got '{m['body']}' from {m['from']}"); s.got.set()
    def avail(s, p):
        if p['from'].bare == s.peer: log.append(f"{s.boundjid.bare} sees {p['from']} available"); s.pres.set()
async def main():
    a=C('alice@localhost/slix','secret','bob@localhost'); b=C('bob@localhost/slix','secret','alice@localhost')
    for c in (a,b): c.connect((HOST, PORT))
    await asyncio.sleep(2)
    a.send_presence_subscription(pto='bob@localhost')
    await asyncio.wait_for(asyncio.gather(a.pres.wait(), b.pres.wait()), 10)
    a.send_message(mto='bob@localhost', mbody='hello from slixmpp alice', mtype='chat')
    await asyncio.wait_for(b.got.wait(), 5)
    b.send_message(mto='alice@localhost', mbody='hi alice', mtype='chat')
    await asyncio.wait_for(a.got.wait(), 5)
    log.append('alice roster: ' + str({k: a.client_roster[k]['subscription'] for k in a.client_roster}))
    for c in (a,b): c.disconnect()
    await asyncio.sleep(1)
asyncio.run(main()); print("\n".join(log))
