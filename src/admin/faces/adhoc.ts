// The XEP-0050 face of the admin operations: each is a node on the server JID, as XEP-0133 names
// them (http://jabber.org/protocol/admin#<id>); its fields are the form to fill, and admins only
// (server.isAdmin) see and run it.
import { NS } from '../../../protocol/namespaces.js';
import type { Jid } from '../../../protocol/jid.js';
import { StanzaError } from '../../../protocol/errors.js';
import { formType, type DataForm, type FormField } from '../../../protocol/forms.js';
import type { Server } from '../../context.js';
import { commandError, registerCommand, type CommandStep } from '../../commands/registry.js';
import { AdminError, formField, runCommand, type Actor, type AdminInput, type AnyAdminCommand } from '../command.js';

const ADMIN = NS.adminCommands;
const FORM_TYPE: FormField = { var: 'FORM_TYPE', type: 'hidden', values: [ADMIN] };

function inputForm(cmd: AnyAdminCommand): DataForm {
  return { type: 'form', title: cmd.title, instructions: [cmd.instructions], fields: [FORM_TYPE, ...cmd.fields.map(formField)] };
}

/** The submitted values, or bad-payload when the submission is not this command's form. */
function submittedInput(submitted: DataForm): AdminInput {
  if (submitted.type !== 'submit') throw commandError('bad-payload', 'expected a submitted form');
  const declared = formType(submitted);
  if (declared !== undefined && declared !== ADMIN) throw commandError('bad-payload', `unexpected FORM_TYPE ${declared}`);
  const input: AdminInput = {};
  for (const f of submitted.fields) if (f.var && f.var !== 'FORM_TYPE') input[f.var] = f.values;
  return input;
}

function stanzaError(e: AdminError): StanzaError {
  return e.condition === 'bad-request' ? commandError('bad-payload', e.message) : new StanzaError(e.condition, e.message);
}

/** The account that sends a command; service is the MUC service JID it was sent to, if any. */
export function actorOf(server: Server, from: Jid, service?: string): Actor {
  return { kind: 'account', jid: from, admin: server.isAdmin(from), ...(service ? { service } : {}) };
}

/**
 * Offers each operation as an ad-hoc command on the server JID, or (jid) on a MUC service's JID,
 * where an operation may also let non-admins in (a room's managers on their own rooms).
 */
export function registerAdhocFace(server: Server, commands: readonly AnyAdminCommand[], jid: 'host' | string = 'host'): void {
  const service = jid === 'host' ? undefined : jid;
  for (const cmd of commands) {
    registerCommand(server, {
      node: `${ADMIN}#${cmd.id}`, name: cmd.title, jid,
      allowed: (from) => cmd.allowed(actorOf(server, from, service)),
      async execute(ctx): Promise<CommandStep> {
        if (cmd.fields.length > 0 && !ctx.form) {
          return { status: 'executing', form: inputForm(cmd), actions: { allowed: ['complete'], default: 'complete' } };
        }
        const input = ctx.form ? submittedInput(ctx.form) : {};
        let out: unknown;
        try {
          out = await runCommand(cmd, {
            actor: actorOf(server, ctx.from, service), domain: server.domain, scramIterations: server.config.scramIterations,
            stores: server.stores, server, config: server.config,
          }, input);
        } catch (e) {
          throw e instanceof AdminError ? stanzaError(e) : e;
        }
        const r = cmd.render(out);
        return {
          status: 'completed', notes: r.notes,
          ...(r.fields ? { form: { type: 'result', fields: [FORM_TYPE, ...r.fields] } } : {}),
        };
      },
    });
  }
}
