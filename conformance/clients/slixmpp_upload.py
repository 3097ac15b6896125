import asyncio, hashlib, ssl, sys
import aiohttp
import slixmpp
from slixmpp.xmlstream import ET
# HTTP File Upload with a real client: slixmpp's xep_0363 plugin uploads a file for a room (our
# <room xmlns='urn:x-perch:upload:0'/> is added to the slot request by an outgoing filter) and posts
# its URL in the room; another member reads the URL from the room's history and downloads it with
# aiohttp and its XMPP credentials (HTTP Basic). The upload service's certificate is trusted through
# SSL_CERT_FILE. Lines of interest start with "RESULT ".
# Usage: slixmpp_upload.py upload HOST PORT JID PASSWORD ROOM FILE CONTENT_TYPE
#        slixmpp_upload.py download HOST PORT JID PASSWORD ROOM
MODE, HOST, PORT, JID, PASSWORD, ROOM = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
NICK = JID.split('@')[0]
ROOM_NS = 'urn:x-perch:upload:0'


def say(line):
    print('RESULT ' + line, flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(JID + '/slix', PASSWORD)
        # The XMPP stream (STARTTLS) is not what is tested here; the HTTPS upload verifies its certificate.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ('xep_0030', 'xep_0045', 'xep_0066', 'xep_0363'):
            self.register_plugin(p)
        self.ready = asyncio.Event()
        self.url = asyncio.get_event_loop().create_future()
        self.add_event_handler('session_start', self.start)
        self.add_event_handler('groupchat_message', self.on_groupchat)
        self.add_filter('out', self.room_child)

    async def start(self, _):
        self.send_presence()
        self.ready.set()

    def room_child(self, stanza):
        # Slot requests name the room the file is for.
        if isinstance(stanza, slixmpp.stanza.Iq) and stanza.xml.find('{urn:xmpp:http:upload:0}request') is not None:
            stanza.xml.find('{urn:xmpp:http:upload:0}request').append(ET.Element(f'{{{ROOM_NS}}}room', {'jid': ROOM}))
        return stanza

    def on_groupchat(self, msg):
        body = msg['body']
        if body.startswith('https://') and not self.url.done():
            self.url.set_result(body)


async def upload(c, path, content_type):
    await c.plugin['xep_0045'].join_muc_wait(ROOM, NICK, maxstanzas=0, timeout=10)
    # Discovery as the plugin does it (its own helper trips over Python 3.11's asyncio.wait): the
    # server's items, the one with identity store/file, and the max-file-size of its form.
    items = await c.plugin['xep_0030'].get_items(jid=c.boundjid.domain, timeout=10)
    for jid, _node, _name in items['disco_items']['items']:
        info = await c.plugin['xep_0030'].get_info(jid=jid, timeout=10)
        if ('store', 'file') in [(i[0], i[1]) for i in info['disco_info']['identities']]:
            c.plugin['xep_0363'].upload_service = info['from']
            for form in info['disco_info'].iterables:
                values = form['values']
                if values.get('FORM_TYPE') == ['urn:xmpp:http:upload:0']:
                    c.plugin['xep_0363'].max_file_size = int(values['max-file-size'])
    say(f"service {c.plugin['xep_0363'].upload_service} max={c.plugin['xep_0363'].max_file_size}")
    url = await c.plugin['xep_0363'].upload_file(path, content_type=content_type, timeout=15)
    msg = c.make_message(mto=ROOM, mbody=url, mtype='groupchat')
    msg['oob']['url'] = url
    msg.send()
    say(f'uploaded {url}')
    # The room echoes the message once it is archived.
    await asyncio.wait_for(c.url, 10)


async def download(c):
    await c.plugin['xep_0045'].join_muc_wait(ROOM, NICK, maxstanzas=20, timeout=10)
    url = await asyncio.wait_for(c.url, 10)
    async with aiohttp.ClientSession() as http:
        async with http.get(url, auth=aiohttp.BasicAuth(JID, PASSWORD)) as r:
            data = await r.read()
            say(f"downloaded status={r.status} type={r.headers.get('Content-Type')} length={r.headers.get('Content-Length')} "
                f"sha256={hashlib.sha256(data).hexdigest()} bytes={len(data)}")


async def main():
    c = Client()
    c.connect((HOST, PORT))
    await asyncio.wait_for(c.ready.wait(), 15)
    try:
        if MODE == 'upload':
            await upload(c, sys.argv[7], sys.argv[8])
        else:
            await download(c)
    except Exception as e:
        say(f'failed {type(e).__name__}: {e}')
    c.disconnect()
    await asyncio.sleep(0.5)


asyncio.run(main())
