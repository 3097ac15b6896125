// Messages of the persistent-chat model: a body is at most 16,000 characters, a story's at most
// 200,000. Stories (<story xmlns='urn:x-perch:msg:0'><title/></story>) and alerts (<alert/>) pass
// through the room as they came, archived with the message.
import { MucProtocolError } from '../../../protocol/muc.js';
import type { RoomFeature } from '../events.js';

export const NS_MSG = 'urn:x-perch:msg:0';
export const MAX_BODY = 16_000;
export const MAX_STORY_BODY = 200_000;

/** Characters (code points) of s, counting no further than limit + 1. */
function longerThan(s: string, limit: number): boolean {
  if (s.length <= limit) return false;
  let n = 0;
  for (const _ of s) if (++n > limit) return true;
  return false;
}

export const chatMessages: RoomFeature = {
  name: 'chat-messages',
  init(hooks) {
    hooks.on('message/pre-groupchat', ({ stanza, body }) => {
      if (!body) return undefined;
      const story = stanza.getChild('story', NS_MSG) !== undefined;
      const limit = story ? MAX_STORY_BODY : MAX_BODY;
      if (longerThan(body.text(), limit)) {
        throw new MucProtocolError('not-acceptable', `a ${story ? 'story' : 'message'} body is at most ${limit} characters`);
      }
      return undefined;
    }, 90);
    hooks.on('disco/info', ({ features }) => { features.push(NS_MSG); return undefined; }, 100);
  },
};
