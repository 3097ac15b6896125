// Placeholder until the module is written.
import type { Module } from '../context.js';

export const versionModule: Module = { name: 'version', init() {} };
