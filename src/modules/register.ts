// In-band registration (XEP-0077).
//
// Creating an account happens before authentication and only when `registration.enabled` is set.
// Changing one's password and cancelling one's own account are the account owner's business and
// work whatever that setting says (as Prosody does: its account management stays loaded when
// allow_registration is off). XEP-0077 lets a deployment refuse them (not-allowed), but nothing
// here needs to.
import { Element } from '../../protocol/xml.js';
import { NS } from '../../protocol/namespaces.js';
import { StanzaError, errorReply } from '../../protocol/errors.js';
import { buildForm, parseForm, formType, formValue, type DataForm } from '../../protocol/forms.js';
import { addUser, deleteAccount, normalizeUsername, setPassword } from '../accounts.js';
import type { IqRequest, Module, PreAuthStream, Server } from '../context.js';

/** Registrations attempted per address in THROTTLE_SECONDS. */
const THROTTLE_ATTEMPTS = 5;
const THROTTLE_SECONDS = 600;
const INSTRUCTIONS = 'Choose a username and password for use with this service.';

function registrationForm(): Element {
  const form: DataForm = {
    type: 'form',
    title: 'Account registration',
    instructions: [INSTRUCTIONS],
    fields: [
      { var: 'FORM_TYPE', type: 'hidden', values: [NS.register] },
      { var: 'username', type: 'text-single', label: 'Username', required: true, values: [] },
      { var: 'password', type: 'text-private', label: 'Password', required: true, values: [] },
    ],
  };
  return buildForm(form);
}

/** Username and password from the legacy fields or from a submitted jabber:iq:register form. */
function credentials(query: Element): { username: string; password: string } | null {
  const x = query.getChild('x', NS.dataForms);
  if (x) {
    let form: DataForm;
    try {
      form = parseForm(x);
    } catch {
      return null;
    }
    if (form.type !== 'submit' || (formType(form) ?? NS.register) !== NS.register) return null;
    const username = formValue(form, 'username');
    const password = formValue(form, 'password');
    return username !== undefined && password !== undefined ? { username, password } : null;
  }
  const username = query.getChildText('username', NS.register);
  const password = query.getChildText('password', NS.register);
  return username !== undefined && password !== undefined ? { username, password } : null;
}

/** An IQ error without the request's payload, which would echo the password (XEP-0077 §3.3). */
function bareError(stanza: Element, err: StanzaError): Element | null {
  const reply = errorReply(stanza, err);
  if (reply) reply.children = reply.children.filter((c) => typeof c !== 'string' && c.name === 'error');
  return reply;
}

// --- before authentication -------------------------------------------------------------------------

/** Streams that have created an account: one registration per connection (XEP-0077 §3.1.1). */
const registeredStreams = new WeakSet<PreAuthStream>();

async function preAuthRegister(server: Server, stanza: Element, stream: PreAuthStream): Promise<void> {
  const query = stanza.getChild('query', NS.register)!;
  const id = stanza.attrs.id;
  const fail = (err: StanzaError) => {
    const reply = bareError(stanza, err);
    if (reply) stream.reply(reply);
  };
  // With STARTTLS required, nothing but TLS negotiation may happen in the clear; not-authorized is
  // XEP-0077's condition for a channel not safe enough to carry a password.
  if (server.config.tls.requireStartTls && !stream.secure) {
    return fail(new StanzaError('not-authorized', 'use STARTTLS first'));
  }
  if (stanza.attrs.type === 'get') {
    const q = new Element('query', { xmlns: NS.register });
    q.c('instructions').t(INSTRUCTIONS);
    q.c('username');
    q.c('password');
    q.append(registrationForm());
    stream.reply(new Element('iq', id !== undefined ? { type: 'result', id } : { type: 'result' }).append(q));
    return;
  }
  if (query.getChild('remove', NS.register)) return fail(new StanzaError('registration-required'));
  if (registeredStreams.has(stream)) {
    return fail(new StanzaError('not-acceptable', 'an account was already registered on this connection'));
  }
  const hits = await server.sessions.hit('register:' + stream.remoteAddress, THROTTLE_SECONDS);
  if (hits > THROTTLE_ATTEMPTS) {
    // XEP-0077 §3.1.1: too many registration attempts may be refused with not-acceptable.
    return fail(new StanzaError('not-acceptable', 'too many registrations from this address; try again later', 'wait'));
  }
  const creds = credentials(query);
  if (!creds || creds.password === '') return fail(new StanzaError('not-acceptable', 'a username and a password are required'));
  const outcome = await addUser(server.stores, server.domain, creds.username, creds.password, server.config.scramIterations);
  if (outcome === 'invalid') return fail(new StanzaError('not-acceptable', 'this username is not allowed'));
  if (outcome === 'exists') return fail(new StanzaError('conflict', 'this username is taken'));
  registeredStreams.add(stream);
  server.log.info('account registered', { username: normalizeUsername(creds.username, server.domain), ip: stream.remoteAddress });
  stream.reply(new Element('iq', id !== undefined ? { type: 'result', id } : { type: 'result' }));
}

// --- after authentication --------------------------------------------------------------------------

function authenticatedGet(server: Server, req: IqRequest): Element {
  const username = ownAccount(server, req);
  const q = new Element('query', { xmlns: NS.register });
  q.c('registered');
  q.c('username').t(username);
  return q;
}

/** The requester's own username; anything else may not manage this account. */
function ownAccount(server: Server, req: IqRequest): string {
  const { from, to } = req;
  if (from.domain !== server.domain || !from.local) throw new StanzaError('forbidden');
  if (to.local && to.bareString() !== from.bareString()) throw new StanzaError('forbidden');
  return from.local;
}

async function authenticatedSet(server: Server, req: IqRequest): Promise<null> {
  const username = ownAccount(server, req);
  const { payload, stanza, session } = req;
  const refuse = (err: StanzaError): StanzaError => {
    // Keep the password out of the error (XEP-0077 §3.3): the error reply is built from the stanza.
    stanza.children = [];
    return err;
  };
  if (payload.getChild('remove', NS.register)) {
    if (payload.elements().length !== 1) throw refuse(new StanzaError('bad-request', '<remove/> must be the only child'));
    if (!(await deleteAccount(server.stores, server.domain, username, server, { endSessions: 'after' }))) {
      throw refuse(new StanzaError('registration-required'));
    }
    server.log.info('account removed by its owner', { username });
    return null;
  }
  if (server.config.tls.requireStartTls && session && !session.secure) {
    throw refuse(new StanzaError('not-authorized', 'change passwords over an encrypted stream only'));
  }
  const creds = credentials(payload);
  if (!creds || creds.password === '') throw refuse(new StanzaError('bad-request', 'a username and a new password are required'));
  if (normalizeUsername(creds.username, server.domain) !== username) {
    throw refuse(new StanzaError('bad-request', 'the username must be that of this account'));
  }
  if (!(await setPassword(server.stores, server.domain, username, creds.password, server.config.scramIterations))) {
    throw refuse(new StanzaError('internal-server-error'));
  }
  server.log.info('password changed', { username });
  return null;
}

export const registerModule: Module = {
  name: 'register',
  init(server) {
    if (server.config.registration.enabled) {
      server.hooks.on('preauth/iq', async ({ stanza, stream }) => {
        const type = stanza.attrs.type;
        if ((type !== 'get' && type !== 'set') || !stanza.getChild('query', NS.register)) return false;
        await preAuthRegister(server, stanza, stream);
        return true;
      });
    }
    for (const scope of ['host', 'account'] as const) {
      server.iq(scope, NS.register, 'get', (req) => authenticatedGet(server, req));
      server.iq(scope, NS.register, 'set', (req) => authenticatedSet(server, req));
    }
    server.disco.hostFeatures.add(NS.register);
  },
};
