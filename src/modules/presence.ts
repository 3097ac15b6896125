// Placeholder until the module is written.
import type { Module } from '../context.js';

export const presenceModule: Module = { name: 'presence', init() {} };
