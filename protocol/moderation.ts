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

/** An archived message's author part (from, id, occupant-id) with no content: what a tombstone keeps. */
function authorShell(original: Element | null): Element {
  const t = new Element('message', { type: 'groupchat' });
  if (original?.attrs.from !== undefined) t.attrs.from = original.attrs.from;
  if (original?.attrs.id !== undefined) t.attrs.id = original.attrs.id;
  const author = original?.getChild('occupant-id', MUC_NS.occupantId)?.attrs.id;
  if (author !== undefined) t.c('occupant-id', { xmlns: MUC_NS.occupantId, id: author });
  return t;
}

/** What the archive keeps in place of a moderated message (XEP-0425 §7): from its author, content gone. */
export function buildTombstone(original: Element | null, req: ModerateRequest, moderator: Moderator, stamp: Date): Element {
  const t = authorShell(original);
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

/** Perch's marker of a message an administrator replaced (the archive's copy and the live notice). */
export const NS_ADMIN_REPLACED = 'urn:x-perch:moderation:0';

/**
 * An administrator's removal or replacement of an archived message: the room acts (no moderator
 * occupant), with a reason; replacement is the text the message now reads, absent for a removal.
 */
export interface AdminModeration {
  /** The room's bare JID. */
  room: string;
  /** The message's stanza-id. */
  id: string;
  reason: string;
  replacement?: string;
}

/**
 * What occupants get (XEP-0425 §6, by the room): a retraction of the message, so clients drop its
 * text; for a replacement also an x-perch <replaced/> carrying the new text, and the new text as the
 * body, so any client shows what the message became.
 */
export function buildAdminNotice(noticeId: string, m: AdminModeration): Element {
  const msg = new Element('message', { from: m.room, type: 'groupchat', id: noticeId });
  const r = msg.c('retract', { xmlns: NS.retract, id: m.id });
  r.c('moderated', { xmlns: NS.moderate, by: m.room });
  r.c('reason').t(m.reason);
  if (m.replacement !== undefined) {
    msg.c('replaced', { xmlns: NS_ADMIN_REPLACED, id: m.id, by: m.room }).c('body').t(m.replacement);
    msg.c('body').t(m.replacement);
  } else {
    msg.c('body').t('This message was removed by the administrator.');
    msg.c('fallback', { xmlns: NS.fallback, for: NS.retract });
  }
  return msg;
}

/**
 * What the archive keeps for a message an administrator acted on. A removal: the XEP-0425 tombstone
 * from its author, moderated by the room. A replacement: the message from its author (its id,
 * occupant-id and stanza-id kept) whose only content is the replacement body, with <replaced/>
 * holding the XEP-0425 <moderated/> by the room, so an archive reader sees who changed it.
 */
export function buildAdminArchived(original: Element | null, m: AdminModeration, stamp: Date): Element {
  const t = authorShell(original);
  const at = formatDateTime(stamp);
  if (m.replacement === undefined) {
    const r = t.c('retracted', { xmlns: NS.retract, stamp: at });
    r.c('moderated', { xmlns: NS.moderate, by: m.room });
    r.c('reason').t(m.reason);
    return t;
  }
  // The stanza-id stays: the room's join history recognises the message by it.
  for (const c of original?.children ?? []) {
    if (typeof c !== 'string' && c.name === 'stanza-id' && c.attrs.by === m.room) t.append(new Element('stanza-id', { ...c.attrs }));
  }
  t.c('body').t(m.replacement);
  const rep = t.c('replaced', { xmlns: NS_ADMIN_REPLACED, stamp: at });
  rep.c('moderated', { xmlns: NS.moderate, by: m.room });
  rep.c('reason').t(m.reason);
  return t;
}
