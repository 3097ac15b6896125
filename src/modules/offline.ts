// Placeholder until the module is written.
import type { Module } from '../context.js';

export const offlineModule: Module = { name: 'offline', init() {} };
