// Messages that point at another message (reactions, replies, corrections, retractions by their
// author): the archive keeps them whether or not the client asked with a <store/> hint, as entries of
// their own in the room's order, and they count as join history. Corrections and retractions come
// only from the author of the original (same real bare JID: forbidden otherwise), and a room or its
// persistent-chat category may refuse them (x-perch#allow-corrections / allow-retractions, the
// category's editing: not-allowed), as the original product forbade editing posted messages. A retracted message (by its author or a moderator) takes its
// reactions and corrections with it: they become tombstones in the archive. See docs/interactions.md.
import { StanzaError } from '../../../protocol/errors.js';
import { NS } from '../../../protocol/namespaces.js';
import { escapeAttr } from '../../../protocol/xml.js';
import { parseStanzaString } from '../../../protocol/xml-stream.js';
import {
  NS_CORRECT, interactionOf, buildAuthorTombstone, buildDependentTombstone,
} from '../../../protocol/interactions.js';
import type { Element } from '../../../protocol/xml.js';
import type { ArchiveRewrite } from '../../../storage/types.js';
import { bool } from '../option.js';
import { governedRoom } from '../governed.js';
import type { RoomFeature } from '../events.js';
import type { Room } from '../room.js';

export const FIELD_CORRECTIONS = 'x-perch#allow-corrections';
export const FIELD_RETRACTIONS = 'x-perch#allow-retractions';

/** Messages a room remembers the author of (what a correction or retraction is checked against). */
const KNOWN = 1000;
/** Interactions of one message a retraction takes with it, at most. */
const DEPENDENTS = 1000;

/** A recent message: its room stanza id, its author and its own id. */
interface Known { stanzaId: string; bare: string; clientId: string | undefined }

/**
 * A room's recent messages by stanza id and by author and client id (corrections name the client's
 * id, which only its author's messages share), oldest first, bounded.
 */
class Recent {
  private readonly byStanzaId = new Map<string, Known>();
  private readonly byClientId = new Map<string, Known>();

  add(k: Known): void {
    this.byStanzaId.set(k.stanzaId, k);
    if (k.clientId !== undefined) this.byClientId.set(`${k.bare}\0${k.clientId}`, k);
    if (this.byStanzaId.size > KNOWN) {
      const oldest = this.byStanzaId.values().next().value as Known;
      this.forget(oldest.stanzaId);
    }
  }

  /** The message a correction or retraction by bare names (its stanza id, or the author's client id). */
  find(bare: string, id: string): Known | undefined {
    return this.byStanzaId.get(id) ?? this.byClientId.get(`${bare}\0${id}`);
  }

  /** Someone else's message with this client id (a correction of it is forbidden, not unknown). */
  anyByClientId(id: string): Known | undefined {
    for (const k of this.byStanzaId.values()) if (k.clientId === id) return k;
    return undefined;
  }

  forget(stanzaId: string): void {
    const k = this.byStanzaId.get(stanzaId);
    if (!k) return;
    this.byStanzaId.delete(stanzaId);
    if (k.clientId !== undefined && this.byClientId.get(`${k.bare}\0${k.clientId}`) === k) this.byClientId.delete(`${k.bare}\0${k.clientId}`);
  }
}

const CLIENT_ID = /^<message\b[^>]*?\sid='([^']*)'/;

/** The sender's id of a stored stanza, read off its start tag (no parse). */
function clientIdOf(xml: string): string | undefined {
  const m = CLIENT_ID.exec(xml);
  return m ? m[1]!.replace(/&apos;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&') : undefined;
}

export const interactions: RoomFeature = {
  name: 'interactions',
  init(hooks, ctx) {
    const archive = () => ctx.server.stores.archive;
    const recents = new WeakMap<Room, Recent>();
    const recentOf = (room: Room): Recent => {
      let r = recents.get(room);
      if (!r) recents.set(room, r = new Recent());
      return r;
    };
    /** The persistent-chat category's policy (rooms of other services: allowed). */
    const categoryAllows = (room: Room): boolean => governedRoom(ctx.server, ctx.domain, room.name)?.category.editing !== false;
    /** Retraction stanza → the stanza id of the message it retracts (resolved when it was accepted). */
    const targets = new WeakMap<Element, string>();

    hooks.option(bool('allowCorrections', FIELD_CORRECTIONS, 'Allow occupants to correct their messages (XEP-0308)', 18, true));
    hooks.option(bool('allowRetractions', FIELD_RETRACTIONS, 'Allow occupants to retract their messages (XEP-0424)', 19, true));

    // The authors of the newest archived messages, so checks hold across a restart.
    hooks.prepare((room, newest) => {
      const r = recentOf(room);
      for (const e of newest) {
        if (!e.retracted && e.realJid !== null) r.add({ stanzaId: e.stanzaId, bare: e.realJid, clientId: clientIdOf(e.stanza) });
      }
    }, { newest: KNOWN });

    // A retraction of an older message: its author is read from the archive before the room sees it.
    hooks.admit(({ room, stanza }) => {
      if (!room || stanza.name !== 'message' || stanza.attrs.type !== 'groupchat') return undefined;
      const i = interactionOf(stanza);
      const id = i?.kind === 'retraction' ? i.id : undefined;
      if (!id || recentOf(room).find('', id)) return undefined;
      return archive().get(room.jid, id).then((e) => {
        if (e && !e.retracted && e.realJid !== null) recentOf(room).add({ stanzaId: e.stanzaId, bare: e.realJid, clientId: clientIdOf(e.stanza) });
        return undefined;
      }, (err: unknown) => {
        ctx.log.error('muc: reading a retracted message failed', { err, room: room.jid });
        return undefined;
      });
    });

    hooks.on('message/pre-groupchat', ({ room, occupant, stanza, body }) => {
      const i = interactionOf(stanza);
      if (!i || (i.kind !== 'correction' && i.kind !== 'retraction')) return undefined;
      const correcting = i.kind === 'correction';
      const what = correcting ? 'correcting' : 'retracting';
      if (!room.config[correcting ? 'allowCorrections' : 'allowRetractions']) {
        throw new StanzaError('not-allowed', `this room does not allow ${what} posted messages`);
      }
      if (!categoryAllows(room)) throw new StanzaError('not-allowed', `rooms of this category do not allow ${what} posted messages`);
      // Only the room announces a moderator's retraction (XEP-0425).
      if (!correcting && (i.el.getChild('moderated', NS.moderate) || i.el.getChild('moderated', NS.moderate0))) throw new StanzaError('forbidden', 'only the room announces moderations');
      if (correcting && !body) throw new StanzaError('bad-request', 'a correction carries the new text');
      const recent = recentOf(room);
      const original = recent.find(occupant.bare, i.id) ?? (correcting ? recent.anyByClientId(i.id) : undefined);
      if (!original) throw new StanzaError('item-not-found', `no such message to ${correcting ? 'correct' : 'retract'}`);
      // XEP-0308 §8 and XEP-0424 §7: only the author (same real JID, whatever the nick) may.
      if (original.bare !== occupant.bare) throw new StanzaError('forbidden', `only its author may ${correcting ? 'correct' : 'retract'} a message`);
      return undefined;
    }, 80);

    // Kept whether or not the client added <store/>: the archive holds the whole conversation.
    hooks.on('message/keep', ({ stanza }) => (interactionOf(stanza) ? true : undefined));

    hooks.on('message/persist', ({ room, occupant, stanza, stanzaId, subjectChange }) => {
      if (subjectChange) return undefined;
      const recent = recentOf(room);
      const i = interactionOf(stanza);
      if (i?.kind === 'retraction') {
        const original = recent.find(occupant.bare, i.id);
        if (original) {
          targets.set(stanza, original.stanzaId);
          recent.forget(original.stanzaId);
        }
        return undefined;
      }
      // Corrections and reactions are not corrected or retracted themselves: only messages are known.
      if (i?.kind === 'correction' || i?.kind === 'reaction') return undefined;
      recent.add({ stanzaId, bare: occupant.bare, clientId: stanza.attrs.id });
      return undefined;
    });

    // The retraction is archived and delivered; the message it names becomes a tombstone.
    hooks.on('message/committed', ({ room, stanza, stamp }) => {
      const id = targets.get(stanza);
      if (id === undefined) return undefined;
      const slot = room.slot();
      void (async () => {
        const original = await archive().get(room.jid, id);
        if (!original || original.retracted) return false;
        return archive().retract(room.jid, id, buildAuthorTombstone(parseStanzaString(original.stanza), stamp).toString());
      })().then((done) => {
        room.release(slot, () => { if (done) hooks.after('message/retracted', { room, id }); });
      }, (err: unknown) => {
        ctx.log.error('muc: retracting a message in the archive failed', { err, room: room.jid });
        room.release(slot, () => {});
      });
      return undefined;
    });

    /** Tombstones the reactions to a retracted message and its author's corrections; returns their stanza ids. */
    const dependents = async (room: Room, id: string): Promise<string[]> => {
      const store = archive();
      const original = await store.get(room.jid, id);
      if (!original) return [];
      const clientId = clientIdOf(original.stanza);
      const texts = [`id='${escapeAttr(id)}'`];
      if (clientId !== undefined && clientId !== id) texts.push(`id='${escapeAttr(clientId)}'`);
      const now = new Date();
      const rewrites: ArchiveRewrite[] = [];
      for (const e of await store.mentioning(room.jid, id, texts, DEPENDENTS)) {
        const el = parseStanzaString(e.stanza);
        const i = el ? interactionOf(el) : null;
        if (!el || !i) continue;
        const goes = i.kind === 'reaction' ? i.id === id || (i.id === clientId && e.realJid === original.realJid)
          : i.kind === 'correction' ? (i.id === clientId || i.id === id) && e.realJid === original.realJid
            : false; // replies are their authors' own words; a retraction stays as the record of it
        if (goes) rewrites.push({ stanzaId: e.stanzaId, stanza: buildDependentTombstone(el, now).toString(), body: null, retracted: true });
      }
      return rewrites.length > 0 ? store.rewrite(room.jid, rewrites) : [];
    };

    // Whoever retracted it (its author, a moderator): what points at it goes with it.
    hooks.on('message/retracted', ({ room, id, dependent }) => {
      recentOf(room).forget(id);
      if (dependent) return undefined;
      const slot = room.slot();
      dependents(room, id).then((gone) => room.release(slot, () => {
        for (const d of gone) hooks.after('message/retracted', { room, id: d, dependent: true });
      }), (err: unknown) => {
        ctx.log.error('muc: retracting what points at a retracted message failed', { err, room: room.jid });
        room.release(slot, () => {});
      });
      return undefined;
    });

    hooks.on('disco/info', ({ room, features }) => {
      const editing = categoryAllows(room);
      if (editing && room.config.allowRetractions) features.push(NS.retract);
      if (editing && room.config.allowCorrections) features.push(NS_CORRECT);
      return undefined;
    }, 80);
  },
};
