import asyncio, ssl, sys
import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath
# Search across the rooms of a MUC service with a real client: the MAM query sent to the service's
# JID with our field {urn:x-perch:search:0}text, two results a page, paging with RSM until complete.
# Prints "RESULT <room> <body>" per result (newest first), then "RESULT done count=N pages=P".
# Usage: /usr/bin/python3 slixmpp_search.py HOST PORT JID PASSWORD SERVICE TEXT
HOST, PORT, JID, PASSWORD, SERVICE, TEXT = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
SEARCH = 'urn:x-perch:search:0'


def say(line):
    print('RESULT ' + line, flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(JID + '/slix', PASSWORD)
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ('xep_0030', 'xep_0004', 'xep_0059', 'xep_0297', 'xep_0313'):
            self.register_plugin(p)
        self.ready = asyncio.Event()
        self.results = []
        self.add_event_handler('session_start', self.start)
        self.register_handler(Callback('mam result', StanzaPath('message/mam_result'), self.on_result))

    async def start(self, _):
        self.send_presence()
        self.ready.set()

    def on_result(self, msg):
        message = msg['mam_result']['forwarded']['stanza']
        self.results.append((message['from'].bare, message['body']))


async def search(c, after):
    iq = c.make_iq_set(ito=SERVICE)
    iq['mam']['queryid'] = 'search'
    iq['mam'].set_custom_field('{%s}text' % SEARCH, TEXT)
    iq['mam'].set_custom_field('{%s}match' % SEARCH, 'all')
    iq['mam']['rsm']['max'] = '2'
    if after:
        iq['mam']['rsm']['after'] = after
    res = await iq.send(timeout=10)
    fin = res['mam_fin']
    return fin['rsm']['last'], fin['rsm']['count'], fin.xml.get('complete') == 'true'


async def main():
    c = Client()
    c.connect((HOST, PORT))
    await asyncio.wait_for(c.ready.wait(), 15)
    after, pages, count = None, 0, None
    while True:
        after, count, complete = await search(c, after)
        pages += 1
        if complete or not after or pages > 20:
            break
    for room, body in c.results:
        say(f'{room} {body}')
    say(f'done count={count} pages={pages}')
    c.disconnect()


asyncio.run(main())
