// Every admin operation the faces offer. Adding an operation means adding a descriptor here.
import type { AnyAdminCommand } from './command.js';
import { userCommands } from './users.js';
import { roomCommands } from './rooms.js';
import { categoryCommands } from './chat-categories.js';
import { chatRoomCommands } from './chat-rooms.js';
import { directoryCommands } from './chat-directory.js';
import { chatServiceCommands } from './chat-service.js';
import { contentCommands } from './chat-content.js';
import { selftestCommand } from './selftest.js';
import { exportXep0227Command, importXep0227Command } from './xep0227.js';
import { dataCommands } from './data.js';
import { complianceCommands } from './compliance.js';
import { uploadCommands } from './uploads.js';
import { directorySyncCommands } from './directory-sync.js';
import { nodeCommands } from './nodes.js';

/** The persistent-chat operations: also offered on each MUC service's JID. */
export const chatCommands: readonly AnyAdminCommand[] = [...categoryCommands, ...chatRoomCommands, ...directoryCommands, ...chatServiceCommands, ...contentCommands];

export const adminCommands: readonly AnyAdminCommand[] = [
  ...userCommands, ...roomCommands, ...chatCommands, ...dataCommands, ...complianceCommands, ...uploadCommands, ...directorySyncCommands, ...nodeCommands, importXep0227Command, exportXep0227Command, selftestCommand,
];

export function findAdminCommand(id: string): AnyAdminCommand | undefined {
  return adminCommands.find((c) => c.id === id);
}
