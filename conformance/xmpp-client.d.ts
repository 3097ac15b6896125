// The part of @xmpp/client (which ships no type declarations) the conformance tests use.
declare module '@xmpp/client' {
  import type { EventEmitter } from 'node:events';

  export interface XmppElement {
    name: string;
    attrs: Record<string, string>;
    children: (XmppElement | string)[];
    is(name: string, ns?: string): boolean;
    getChild(name: string, ns?: string): XmppElement | undefined;
    getChildren(name: string, ns?: string): XmppElement[];
    getChildText(name: string, ns?: string): string | null;
    getChildElements(): XmppElement[];
    getText(): string;
    text(): string;
    toString(): string;
  }

  export interface XmppJid { toString(): string; local: string; domain: string; resource: string }

  export interface XmppClient extends EventEmitter {
    jid: XmppJid | null;
    status: string;
    socket: { socket?: { destroy(): void } } | null;
    reconnect: { stop(): void };
    streamManagement: { id: string; enabled: boolean; inbound: number; outbound: number };
    iqCaller: {
      request(el: XmppElement, timeoutMs?: number): Promise<XmppElement>;
      get(el: XmppElement, to?: string, timeoutMs?: number): Promise<XmppElement>;
      set(el: XmppElement, to?: string, timeoutMs?: number): Promise<XmppElement>;
    };
    /** Answers incoming IQ get/set by child name and namespace (unanswered ones get service-unavailable). */
    iqCallee: {
      get(ns: string, name: string, handler: (ctx: { stanza: XmppElement }) => XmppElement | Promise<XmppElement>): void;
      set(ns: string, name: string, handler: (ctx: { stanza: XmppElement }) => XmppElement | Promise<XmppElement>): void;
    };
    start(): Promise<XmppJid>;
    stop(): Promise<void>;
    send(el: XmppElement): Promise<void>;
    write(s: string): Promise<void>;
  }

  export function client(options: {
    service: string; domain?: string; username?: string; password?: string; resource?: string; timeout?: number;
  }): XmppClient;

  type Child = XmppElement | string | null | undefined | false;
  export function xml(name: string, attrs?: Record<string, string | undefined> | null, ...children: (Child | Child[])[]): XmppElement;
}
