// Every fuzz target, in the order `npm run fuzz -- all` runs them.
import type { FuzzTarget } from '../target.js';
import { jidTarget } from './jid.js';

export const TARGETS: FuzzTarget[] = [jidTarget];
