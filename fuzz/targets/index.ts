// Every fuzz target, in the order `npm run fuzz -- all` runs them.
import type { FuzzTarget } from '../target.js';
import { xmlStreamTarget } from './xml-stream.js';
import { jidTarget } from './jid.js';
import { saslTarget } from './sasl.js';
import { formsTarget } from './forms.js';
import { datetimeTarget } from './datetime.js';
import { mucTarget } from './muc.js';
import { mamTarget } from './mam.js';
import { framingTarget } from './framing.js';
import { principalTarget } from './principal.js';
import { stanzaErrorsTarget } from './stanza-errors.js';

export const TARGETS: FuzzTarget[] = [
  xmlStreamTarget, jidTarget, saslTarget, formsTarget, datetimeTarget, mucTarget, mamTarget, framingTarget, principalTarget,
  stanzaErrorsTarget,
];
