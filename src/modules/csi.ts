// Placeholder until the module is written.
import type { Module } from '../context.js';

export const csiModule: Module = { name: 'csi', init() {} };
