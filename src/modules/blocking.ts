// Placeholder until the module is written.
import type { Module } from '../context.js';

export const blockingModule: Module = { name: 'blocking', init() {} };
