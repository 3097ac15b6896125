// Entity Time (XEP-0202) of the server: always reported in UTC.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import type { Module } from '../context.js';
import { formatDateTimeSeconds } from '../../protocol/datetime.js';

export const timeModule: Module = {
  name: 'time',
  init(server) {
    server.iq('host', NS.time, 'get', () => {
      const t = new Element('time', { xmlns: NS.time });
      t.c('tzo').t('Z');
      // XEP-0082 dateTime in UTC; whole seconds, as most implementations send.
      t.c('utc').t(formatDateTimeSeconds(new Date()));
      return t;
    });
    server.disco.hostFeatures.add(NS.time);
  },
};
