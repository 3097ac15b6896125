import asyncio, ssl, sys
import slixmpp
from slixmpp.exceptions import PresenceError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath
# Persistent-chat rooms with a real client: a user joins a closed room it is a member of, is refused
# one it is not a member of (the error condition), then waits to be removed from the first one (the
# status codes and the reason). Lines of interest start with "RESULT " (slixmpp prints other things).
# Usage: /usr/bin/python3 slixmpp_pchat.py HOST PORT JID PASSWORD MEMBER_ROOM OTHER_ROOM [WAIT_SECONDS]
HOST, PORT, JID, PASSWORD, MEMBER_ROOM, OTHER_ROOM = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
WAIT = float(sys.argv[7]) if len(sys.argv) > 7 else 20.0
NICK = JID.split('@')[0]


def say(line):
    print('RESULT ' + line, flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(JID + '/slix', PASSWORD)
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ('xep_0030', 'xep_0045'):
            self.register_plugin(p)
        self.ready = asyncio.Event()
        self.removed = asyncio.get_event_loop().create_future()
        self.add_event_handler('session_start', self.start)
        self.register_handler(Callback('removal', StanzaPath('presence'), self.on_presence))

    async def start(self, _):
        self.send_presence()
        self.ready.set()

    def on_presence(self, pres):
        if pres['type'] != 'unavailable' or pres['from'].bare != MEMBER_ROOM or pres['from'].resource != NICK:
            return
        if not self.removed.done():
            codes = sorted(pres['muc']['status_codes'])
            self.removed.set_result((codes, pres['muc']['item']['reason']))


async def try_join(c, room):
    try:
        await c.plugin['xep_0045'].join_muc_wait(room, NICK, maxstanzas=0, timeout=10)
        say(f'joined {room}')
        return True
    except PresenceError as e:
        say(f"refused {room} {e.presence['error']['condition']}")
    except asyncio.TimeoutError:
        say(f'no answer {room}')
    return False


async def main():
    c = Client()
    c.connect((HOST, PORT))
    await asyncio.wait_for(c.ready.wait(), 15)
    joined = await try_join(c, MEMBER_ROOM)
    await try_join(c, OTHER_ROOM)
    if joined:
        say('waiting')
        try:
            codes, reason = await asyncio.wait_for(c.removed, WAIT)
            say(f"removed {MEMBER_ROOM} codes={','.join(str(x) for x in codes)} reason={reason}")
        except asyncio.TimeoutError:
            say(f'not removed {MEMBER_ROOM}')
    c.disconnect()
    await asyncio.sleep(0.5)


asyncio.run(main())
