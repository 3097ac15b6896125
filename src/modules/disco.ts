// Placeholder until the module is written.
import type { Module } from '../context.js';

export const discoModule: Module = { name: 'disco', init() {} };
