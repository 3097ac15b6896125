// Every feature module, in load order. Adding a feature means adding a file and a line here.
import type { Module } from '../context.js';
import { sessionIqModule } from './session-iq.js';
import { discoModule } from './disco.js';
import { rosterModule } from './roster.js';
import { presenceModule } from './presence.js';
import { offlineModule } from './offline.js';
import { carbonsModule } from './carbons.js';
import { blockingModule } from './blocking.js';
import { csiModule } from './csi.js';
import { pingModule } from './ping.js';
import { versionModule } from './version.js';
import { timeModule } from './time.js';
import { vcardModule } from './vcard.js';
import { privateModule } from './private.js';
import { registerModule } from './register.js';
import { adhocModule } from './adhoc.js';
import { adminModule } from '../admin/module.js';
import { chatModelModule } from '../pchat/module.js';
import { mucModule } from '../muc/module.js';
import { chatUserIqModule } from '../pchat/user-iq.js';
import { mamModule } from './mam.js';
import { serviceSearchModule } from '../muc/service-search.js';
import { complianceStateModule } from '../compliance/state.js';
import { complianceExporterModule } from '../compliance/exporter.js';
import { uploadModule } from '../upload/module.js';
import { complianceCaptureModule } from '../compliance/capture.js';
import { pubsubModule } from '../pubsub/module.js';
import { directorySyncModule } from '../directory/module.js';
import { nodesModule } from '../cluster-nodes.js';
import { archiveQuartersModule } from './archive-quarters.js';
import { archiveCountsModule } from './archive-counts.js';

export function allModules(): Module[] {
  return [
    complianceStateModule, complianceExporterModule, sessionIqModule, discoModule, rosterModule, presenceModule, offlineModule, carbonsModule,
    blockingModule, csiModule, pingModule, versionModule, timeModule, vcardModule, privateModule,
    registerModule, adhocModule, adminModule, chatModelModule, mucModule, chatUserIqModule, mamModule,
    serviceSearchModule, complianceCaptureModule, uploadModule,
    pubsubModule,
    directorySyncModule,
    nodesModule,
    archiveQuartersModule,
    archiveCountsModule,
  ];
}
