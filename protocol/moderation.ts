// Message moderation (XEP-0425) with retraction (XEP-0424), in version 1 and the older version 0
// (which wraps the request and notice in XEP-0422 fastening). Pure codec.
import { Element } from './xml.js';
import { NS } from './namespaces.js';
import { MUC_NS } from './muc.js';
import { StanzaError } from './errors.js';
import { formatDateTime } from './datetime.js';

export interface ModerateRequest {
  /** The stanza-id of the message to retract. */
  id: string;
  reason?: string;
  /** Version 0 (urn:xmpp:message-moderate:0 inside <apply-to/>). */
  legacy: boolean;
}

/** Reads a <moderate/> (v1) or <apply-to/> (v0) IQ payload; only retraction is supported. */
export function parseModerate(payload: Element): ModerateRequest {
  let reason: string | undefined;
  let legacy = false;
  if (payload.ns === NS.moderate) {
    if (!payload.getChild('retract', NS.retract)) throw new StanzaError('bad-request', 'only retraction is supported');
    reason = payload.getChildText('reason', NS.moderate);
  } else {
    legacy = true;
    const m = payload.getChild('moderate', NS.moderate0);
    if (!m || !m.getChild('retract', NS.retract0)) throw new StanzaError('bad-request', 'only retraction is supported');
    reason = m.getChildText('reason', NS.moderate0);
  }
  const id = payload.attrs.id;
  if (!id) throw new StanzaError('bad-request', 'which message?');
  const out: ModerateRequest = { id, legacy };
  if (reason !== undefined) out.reason = reason;
  return out;
}

export interface Moderator {
  /** The moderator's occupant JID. */
  by: string;
  occupantId: string;
}

/** The notice the room broadcasts (XEP-0425 §6), with a fallback body. */
export function buildModerationNotice(room: string, noticeId: string, req: ModerateRequest, moderator: Moderator): Element {
  const msg = new Element('message', { from: room, type: 'groupchat', id: noticeId });
  if (req.legacy) {
    const apply = msg.c('apply-to', { xmlns: NS.fasten, id: req.id });
    const m = apply.c('moderated', { xmlns: NS.moderate0, by: moderator.by });
    m.c('retract', { xmlns: NS.retract0 });
    if (req.reason) m.c('reason').t(req.reason);
  } else {
    const r = msg.c('retract', { xmlns: NS.retract, id: req.id });
    const m = r.c('moderated', { xmlns: NS.moderate, by: moderator.by });
    m.c('occupant-id', { xmlns: MUC_NS.occupantId, id: moderator.occupantId });
    if (req.reason) r.c('reason').t(req.reason);
  }
  msg.c('body').t('This message was retracted by a moderator.');
  msg.c('fallback', { xmlns: NS.fallback, for: req.legacy ? NS.retract0 : NS.retract });
  return msg;
}

/** What the archive keeps in place of a moderated message (XEP-0425 §7): from its author, content gone. */
export function buildTombstone(original: Element | null, req: ModerateRequest, moderator: Moderator, stamp: Date): Element {
  const t = new Element('message', { type: 'groupchat' });
  if (original?.attrs.from !== undefined) t.attrs.from = original.attrs.from;
  if (original?.attrs.id !== undefined) t.attrs.id = original.attrs.id;
  const author = original?.getChild('occupant-id', MUC_NS.occupantId)?.attrs.id;
  if (author !== undefined) t.c('occupant-id', { xmlns: MUC_NS.occupantId, id: author });
  const at = formatDateTime(stamp);
  if (req.legacy) {
    const m = t.c('moderated', { xmlns: NS.moderate0, by: moderator.by });
    m.c('retracted', { xmlns: NS.retract0, stamp: at });
    if (req.reason) m.c('reason').t(req.reason);
  } else {
    const r = t.c('retracted', { xmlns: NS.retract, stamp: at });
    r.c('moderated', { xmlns: NS.moderate, by: moderator.by }).c('occupant-id', { xmlns: MUC_NS.occupantId, id: moderator.occupantId });
    if (req.reason) r.c('reason').t(req.reason);
  }
  return t;
}
