// Parley's website widget. One script tag:
//
//   <script src="https://GATEWAY/widget.js" data-key="pk_…" data-agent="AGENT" async></script>
//
// adds a launcher and a conversation panel (text, and voice over WebRTC).
// Its only global is window.Parley; it sets no cookies and stores nothing
// on the visitor's device.

import { fromAttributes, OptionError, resolve, type Options } from "./options";
import { Widget } from "./ui";

declare const VERSION: string;

type Listener = (detail: unknown) => void;

export interface ParleyAPI {
  version: string;
  init(options: Partial<Record<keyof Options, unknown>>): void;
  open(): void;
  close(): void;
  send(text: string): void;
  startVoice(): void;
  endVoice(): void;
  interrupt(): void;
  on(event: string, fn: Listener): () => void;
  destroy(): void;
}

declare global {
  interface Window {
    Parley?: ParleyAPI;
  }
}

(() => {
  if (window.Parley) return; // the script tag was pasted twice
  const script = document.currentScript as HTMLScriptElement | null;
  let w: Widget | null = null;
  const pending: Array<[string, Listener]> = [];

  const need = (): Widget => {
    if (!w) throw new Error("Parley: the widget is not set up; call Parley.init({key, agent}) first");
    return w;
  };

  const start = (raw: Partial<Record<keyof Options, unknown>>) => {
    const options = resolve(raw); // invalid options keep the widget there is
    w?.destroy();
    w = new Widget(options);
    for (const [name, fn] of pending) w.on(name, fn);
    const mount = () => w?.mount();
    if (document.body) mount();
    else document.addEventListener("DOMContentLoaded", mount, { once: true });
  };

  const api: ParleyAPI = {
    version: VERSION,
    init(options) {
      const base = script ? fromAttributes(script) : {};
      start({ ...base, ...options });
    },
    open: () => need().open(),
    close: () => need().close(),
    send: (text) => need().send(String(text)),
    startVoice: () => {
      const x = need();
      x.open();
      void x.conversation.startVoice();
    },
    endVoice: () => need().conversation.endVoice(),
    interrupt: () => need().conversation.interrupt(),
    on(name, fn) {
      if (typeof fn !== "function") throw new TypeError("Parley.on: the listener must be a function");
      pending.push([name, fn]);
      const off = w?.on(name, fn);
      return () => {
        const i = pending.findIndex(([n, f]) => n === name && f === fn);
        if (i >= 0) pending.splice(i, 1);
        off?.();
      };
    },
    destroy() {
      w?.destroy();
      w = null;
    },
  };
  Object.defineProperty(window, "Parley", { value: Object.freeze(api), configurable: true });

  // A script tag with data-key or data-token-url sets itself up; without,
  // the page calls Parley.init.
  if (script && (script.dataset.key !== undefined || script.dataset.tokenUrl !== undefined)) {
    try {
      start(fromAttributes(script));
    } catch (e) {
      if (e instanceof OptionError) console.error(`Parley widget: ${e.message}`);
      else throw e;
    }
  }
})();
