// The widget's DOM: a launcher button and a conversation panel inside a
// shadow root. Text only ever goes in through textContent.

import { Conversation, type Message, type StatusKind, type View, type VoiceState } from "./conversation";
import { textColor, type Options } from "./options";
import { css } from "./styles";
import { dial } from "./transport";

const svgNS = "http://www.w3.org/2000/svg";
// Icons as [element, attributes] lists, built with createElementNS: no
// innerHTML, so pages enforcing Trusted Types can host the widget.
type Shape = [string, Record<string, string>];
const icons: Record<string, Shape[]> = {
  chat: [["path", { d: "M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z" }]],
  close: [["path", { d: "M6 6l12 12M18 6L6 18" }]],
  send: [["path", { d: "M4 12l16-8-6 16-2-7-8-1z" }]],
  mic: [["rect", { x: "9", y: "3", width: "6", height: "11", rx: "3" }], ["path", { d: "M5 11a7 7 0 0 0 14 0M12 18v3" }]],
};

function icon(name: string): SVGSVGElement {
  const svg = document.createElementNS(svgNS, "svg");
  const attrs: Record<string, string> = {
    viewBox: "0 0 24 24", "aria-hidden": "true", focusable: "false", fill: "none", stroke: "currentColor",
    "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round",
  };
  for (const [k, v] of Object.entries(attrs)) svg.setAttribute(k, v);
  for (const [tag, a] of icons[name]) {
    const e = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(a)) e.setAttribute(k, v);
    svg.append(e);
  }
  return svg;
}

/** styleSheet applies the widget's CSS to its shadow root: a constructed
 * stylesheet where the browser has them (allowed by a page's strict
 * style-src, which a <style> element is not), else a <style>. */
function styleSheet(root: ShadowRoot): void {
  if ("adoptedStyleSheets" in root && typeof CSSStyleSheet !== "undefined" && "replaceSync" in CSSStyleSheet.prototype) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    root.adoptedStyleSheets = [sheet];
    return;
  }
  const style = document.createElement("style");
  style.textContent = css;
  root.append(style);
}

type Listener = (detail: unknown) => void;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text = ""): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

export class Widget implements View {
  readonly host: HTMLElement;
  private root: ShadowRoot;
  private wrap: HTMLDivElement;
  private launcher: HTMLButtonElement;
  private panel: HTMLElement;
  private log: HTMLDivElement;
  private statusEl: HTMLDivElement;
  private voicebar: HTMLDivElement;
  private vstate: HTMLSpanElement;
  private input: HTMLTextAreaElement;
  private micBtn: HTMLButtonElement;
  private bubbles = new Map<string, HTMLDivElement>();
  private listeners = new Map<string, Set<Listener>>();
  private statusTimer = 0;
  /** small: a phone, where the open panel covers the page and is modal. */
  private small = window.matchMedia("(max-width: 480px)");
  readonly conversation: Conversation;

  constructor(private o: Options) {
    const s = o.strings;
    this.host = document.createElement("parley-widget");
    this.root = this.host.attachShadow({ mode: "open" });
    styleSheet(this.root);
    this.wrap = el("div", { class: `root ${o.position}` });
    this.wrap.style.setProperty("--accent", o.color);
    this.wrap.style.setProperty("--on-accent", textColor(o.color));
    this.wrap.style.setProperty("--ring", textColor(o.color) === "#ffffff" ? o.color : "#111111");

    this.launcher = el("button", { class: "launcher", type: "button", "aria-label": s.open, "aria-expanded": "false", "aria-controls": "parley-panel" });
    this.launcher.append(icon("chat"));

    this.panel = el("section", { class: "panel", id: "parley-panel", role: "dialog", "aria-labelledby": "parley-title" });
    this.panel.hidden = true;
    const header = el("header");
    const h2 = el("h2", { id: "parley-title" }, o.title);
    const closeBtn = el("button", { class: "close", type: "button", "aria-label": s.close });
    closeBtn.append(icon("close"));
    header.append(h2, closeBtn);

    this.log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": o.title, tabindex: "0" });
    this.voicebar = el("div", { class: "voicebar", "data-state": "off" });
    this.voicebar.hidden = true;
    this.vstate = el("span", { class: "vstate", role: "status" });
    const stopBtn = el("button", { class: "pill stop", type: "button" }, s.stop);
    const endBtn = el("button", { class: "pill endvoice", type: "button" }, s.endVoice);
    this.voicebar.append(el("span", { class: "dot", "aria-hidden": "true" }), this.vstate, stopBtn, endBtn);
    this.statusEl = el("div", { class: "status", role: "status", "aria-live": "polite" });

    const form = el("form", { class: "composer" });
    const label = el("label", { class: "sr", for: "parley-input" }, s.placeholder);
    this.input = el("textarea", { id: "parley-input", rows: "1", placeholder: s.placeholder, autocomplete: "off", enterkeyhint: "send" });
    this.micBtn = el("button", { class: "mic", type: "button", "aria-label": s.talk, "aria-pressed": "false" });
    this.micBtn.append(icon("mic"));
    this.micBtn.hidden = !o.voice;
    const sendBtn = el("button", { class: "send", type: "submit", "aria-label": s.send });
    sendBtn.append(icon("send"));
    form.append(label, this.input, this.micBtn, sendBtn);

    this.panel.append(header, this.log, this.voicebar, this.statusEl, form);
    this.wrap.append(this.launcher, this.panel);
    this.root.append(this.wrap);

    const audio = el("audio");
    audio.autoplay = true;
    this.root.append(audio);

    this.conversation = new Conversation(o, this, (n, d) => this.fire(n, d), (voice, mic, h) => dial(o, audio, voice, mic, h), audio);

    this.launcher.addEventListener("click", () => (this.panel.hidden ? this.open() : this.close()));
    closeBtn.addEventListener("click", () => this.close());
    this.panel.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        this.close();
      } else if (e.key === "Tab" && this.small.matches) {
        this.trapFocus(e);
      }
    });
    this.small.addEventListener?.("change", () => this.panel.setAttribute("aria-modal", String(this.small.matches)));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => this.grow());
    this.micBtn.addEventListener("click", () => {
      if (this.conversation.voice === "off") void this.conversation.startVoice();
      else this.conversation.endVoice();
    });
    stopBtn.addEventListener("click", () => this.conversation.interrupt());
    endBtn.addEventListener("click", () => {
      this.conversation.endVoice();
      this.input.focus();
    });
  }

  mount(): void {
    document.body.append(this.host);
    if (this.o.open) this.open(false);
  }

  open(focus = true): void {
    if (!this.panel.hidden) return;
    this.panel.hidden = false;
    this.panel.setAttribute("aria-modal", String(this.small.matches));
    this.wrap.classList.add("open");
    this.launcher.setAttribute("aria-expanded", "true");
    this.launcher.setAttribute("aria-label", this.o.strings.close);
    if (focus) this.input.focus();
    this.scroll(true);
    this.conversation.connect();
    this.fire("open", {});
  }

  close(): void {
    if (this.panel.hidden) return;
    const hadFocus = this.root.activeElement !== null;
    this.panel.hidden = true;
    this.wrap.classList.remove("open");
    this.launcher.setAttribute("aria-expanded", "false");
    this.launcher.setAttribute("aria-label", this.o.strings.open);
    if (hadFocus) this.launcher.focus();
    this.fire("close", {});
  }

  send(text: string): void {
    this.open(false);
    this.conversation.send(text);
  }

  on(name: string, fn: Listener): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  destroy(): void {
    this.conversation.destroy();
    this.host.remove();
    this.listeners.clear();
  }

  private fire(name: string, detail: unknown): void {
    for (const fn of this.listeners.get(name) ?? []) {
      try {
        fn(detail);
      } catch (e) {
        console.error("Parley: an event listener threw", e);
      }
    }
  }

  /** trapFocus keeps Tab inside the panel while it covers the page. */
  private trapFocus(e: KeyboardEvent): void {
    const items = [...this.panel.querySelectorAll<HTMLElement>("button, textarea, [tabindex='0']")].filter(
      (x) => !x.hidden && x.getClientRects().length > 0,
    );
    if (items.length === 0) return;
    const first = items[0], last = items[items.length - 1];
    const active = this.root.activeElement;
    if (e.shiftKey && active === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && active === last) {
      e.preventDefault();
      first.focus();
    }
  }

  private submit(): void {
    const text = this.input.value;
    if (!text.trim()) return;
    this.input.value = "";
    this.grow();
    this.conversation.send(text);
  }

  private grow(): void {
    this.input.style.height = "";
    if (this.input.scrollHeight > this.input.clientHeight) {
      this.input.style.height = `${Math.min(this.input.scrollHeight + 2, 120)}px`;
    }
  }

  private scroll(force = false): void {
    const l = this.log;
    if (force || l.scrollHeight - l.scrollTop - l.clientHeight < 80) l.scrollTop = l.scrollHeight;
  }

  // View

  message(m: Message, after?: Message): void {
    let b = this.bubbles.get(m.id);
    if (!b) {
      b = el("div", { class: `msg ${m.role}`, "data-id": m.id });
      b.append(el("span", { class: "sr" }, `${m.role === "user" ? this.o.strings.you : this.o.strings.agent}: `), el("span", { class: "text" }));
      this.bubbles.set(m.id, b);
      const prev = after && this.bubbles.get(after.id);
      if (prev) prev.after(b);
      else this.log.append(b);
    }
    b.classList.toggle("pending", !m.done);
    b.setAttribute("aria-busy", m.done ? "false" : "true");
    (b.querySelector(".text") as HTMLElement).textContent = m.text;
    let note = b.querySelector(".note");
    if (m.interrupted && !note) {
      note = el("span", { class: "note" }, this.o.strings.interrupted);
      b.append(note);
    } else if (!m.interrupted && note) note.remove();
    this.scroll();
  }

  remove(m: Message): void {
    this.bubbles.get(m.id)?.remove();
    this.bubbles.delete(m.id);
  }

  status(text: string, kind: StatusKind, retry: boolean): void {
    clearTimeout(this.statusTimer);
    this.statusEl.className = `status ${kind}`;
    this.statusEl.textContent = text;
    if (retry) {
      const b = el("button", { class: "pill retry", type: "button" }, this.o.strings.retry);
      b.addEventListener("click", () => this.conversation.retry());
      this.statusEl.append(b);
    }
    if (text === this.o.strings.reconnected) {
      this.statusTimer = window.setTimeout(() => this.status("", "none", false), 4000);
    }
  }

  voice(state: VoiceState): void {
    const s = this.o.strings;
    this.voicebar.hidden = state === "off";
    this.voicebar.dataset.state = state;
    this.micBtn.setAttribute("aria-pressed", state === "off" ? "false" : "true");
    const text: Record<VoiceState, string> = {
      off: "", connecting: s.connecting, listening: s.listening, hearing: s.hearing, thinking: s.thinking, speaking: s.speaking,
    };
    this.vstate.textContent = text[state];
  }
}
