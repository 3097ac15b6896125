// Several servers in one process (tests, tools): stopping one stops what its modules started for it
// and nothing of the others. A module's stop once stopped every server's rooms, timers and sockets.
import { expect } from 'chai';
import { Element } from '../../protocol/xml.js';
import { startRoomKit, createRoom, SERVICE } from './kit.js';

describe('stopping one of several servers in a process', () => {
  it('leaves the other server\'s rooms answering', async () => {
    const a = await startRoomKit({ nodeId: 'stop-a' });
    try {
      const owner = await a.client('so-owner@localhost');
      await createRoom(owner, 'so-room', { 'muc#roomconfig_persistentroom': '1' });
      const b = await startRoomKit({ nodeId: 'stop-b' });
      await b.stop();
      owner.clear();
      const m = new Element('message', { to: `so-room@${SERVICE}`, type: 'groupchat' });
      m.c('body').t('still here');
      owner.send(m);
      const echo = await owner.next((el) => el.getChildText('body') === 'still here');
      expect(echo.attrs.from).to.equal(`so-room@${SERVICE}/owner`);
    } finally {
      await a.stop();
    }
  });
});
