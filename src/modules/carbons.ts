// Placeholder until the module is written.
import type { Module } from '../context.js';

export const carbonsModule: Module = { name: 'carbons', init() {} };
