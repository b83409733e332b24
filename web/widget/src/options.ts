// Options of the widget: from the script tag's data attributes or from
// Parley.init({...}); validated here, once, with errors that name the
// attribute.

export interface Strings {
  title: string;
  open: string;
  close: string;
  placeholder: string;
  send: string;
  talk: string;
  endVoice: string;
  stop: string;
  you: string;
  agent: string;
  connecting: string;
  reconnecting: string;
  reconnected: string;
  offline: string;
  retry: string;
  listening: string;
  hearing: string;
  thinking: string;
  speaking: string;
  micDenied: string;
  voiceFailed: string;
  voiceUnsupported: string;
  refused: string;
  failed: string;
  interrupted: string;
  callEnded: string;
}

export const defaultStrings: Strings = {
  title: "Chat with us",
  open: "Open chat",
  close: "Close chat",
  placeholder: "Type a message…",
  send: "Send",
  talk: "Talk",
  endVoice: "End voice",
  stop: "Stop",
  you: "You",
  agent: "Assistant",
  connecting: "Connecting…",
  reconnecting: "Connection lost. Reconnecting…",
  reconnected: "Reconnected.",
  offline: "We couldn't reconnect. Your messages are kept here; try again when you're back online.",
  retry: "Try again",
  listening: "Listening…",
  hearing: "Hearing you…",
  thinking: "Thinking…",
  speaking: "Speaking…",
  micDenied: "Microphone access was refused, so let's keep to text.",
  voiceFailed: "Voice isn't available right now, so let's keep to text.",
  voiceUnsupported: "This browser can't do voice here, so let's keep to text.",
  refused: "This chat can't start here: {message}",
  failed: "Something went wrong: {message}",
  interrupted: "(interrupted)",
  callEnded: "The call ended.",
};

export interface Options {
  /** Base URL of the Parley gateway (defaults to the script's origin). */
  gateway: string;
  /** Publishable key (pk_…); or tokenUrl. */
  key: string;
  /** A same-origin endpoint of the site that returns an ephemeral key. */
  tokenUrl: string;
  agent: string;
  position: "right" | "left";
  color: string;
  title: string;
  greeting: string;
  voice: boolean;
  open: boolean;
  strings: Strings;
}

export class OptionError extends Error {}

const colorRe = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;

/** fromAttributes reads the options of a script tag (data-*). */
export function fromAttributes(el: HTMLScriptElement): Partial<Record<keyof Options, unknown>> {
  const d = el.dataset;
  const o: Partial<Record<keyof Options, unknown>> = {};
  if (el.src) o.gateway = new URL(el.src, location.href).origin;
  if (d.gateway !== undefined) o.gateway = d.gateway;
  if (d.key !== undefined) o.key = d.key;
  if (d.tokenUrl !== undefined) o.tokenUrl = d.tokenUrl;
  if (d.agent !== undefined) o.agent = d.agent;
  if (d.position !== undefined) o.position = d.position;
  if (d.color !== undefined) o.color = d.color;
  if (d.title !== undefined) o.title = d.title;
  if (d.greeting !== undefined) o.greeting = d.greeting;
  if (d.voice !== undefined) o.voice = d.voice;
  if (d.open !== undefined) o.open = d.open;
  if (d.strings !== undefined) {
    try {
      o.strings = JSON.parse(d.strings);
    } catch (e) {
      throw new OptionError(`data-strings is not JSON: ${(e as Error).message}`);
    }
  }
  return o;
}

function bool(name: string, v: unknown, def: boolean): boolean {
  if (v === undefined || v === null || v === "") return def;
  if (typeof v === "boolean") return v;
  if (v === "true") return true;
  if (v === "false") return false;
  throw new OptionError(`${name} must be true or false, not ${JSON.stringify(v)}`);
}

function str(name: string, v: unknown, def: string): string {
  if (v === undefined || v === null) return def;
  if (typeof v !== "string") throw new OptionError(`${name} must be a string`);
  return v.trim();
}

/** resolve validates raw options and fills in the defaults. */
export function resolve(raw: Partial<Record<keyof Options, unknown>>): Options {
  const gateway = str("gateway", raw.gateway, location.origin).replace(/\/+$/, "");
  try {
    const u = new URL(gateway);
    if (u.protocol !== "https:" && u.protocol !== "http:") throw new Error();
  } catch {
    throw new OptionError(`data-gateway must be an http(s) URL, not ${JSON.stringify(gateway)}`);
  }
  const key = str("data-key", raw.key, "");
  const tokenUrl = str("data-token-url", raw.tokenUrl, "");
  if (!key && !tokenUrl) throw new OptionError("data-key (a publishable key, pk_…) or data-token-url is required");
  if (key && !key.startsWith("pk_")) {
    throw new OptionError("data-key must be a publishable key (pk_…); never put a secret key in a web page");
  }
  const agent = str("data-agent", raw.agent, "");
  if (!agent) throw new OptionError("data-agent (the agent's id) is required");
  const position = str("data-position", raw.position, "right");
  if (position !== "right" && position !== "left") {
    throw new OptionError(`data-position must be "right" or "left", not ${JSON.stringify(position)}`);
  }
  const color = str("data-color", raw.color, "#1d4ed8");
  if (!colorRe.test(color)) throw new OptionError(`data-color must be a hex colour like #1d4ed8, not ${JSON.stringify(color)}`);
  const strings: Strings = { ...defaultStrings };
  if (raw.strings !== undefined && raw.strings !== null) {
    if (typeof raw.strings !== "object") throw new OptionError("strings must be an object");
    for (const [k, v] of Object.entries(raw.strings as Record<string, unknown>)) {
      if (!(k in defaultStrings)) {
        throw new OptionError(`strings.${k} is not a known string (known: ${Object.keys(defaultStrings).join(", ")})`);
      }
      if (typeof v !== "string") throw new OptionError(`strings.${k} must be a string`);
      (strings as unknown as Record<string, string>)[k] = v;
    }
  }
  const title = str("data-title", raw.title, strings.title) || strings.title;
  return {
    gateway, key, tokenUrl, agent, position, color, title,
    greeting: str("data-greeting", raw.greeting, ""),
    voice: bool("data-voice", raw.voice, true),
    open: bool("data-open", raw.open, false),
    strings,
  };
}

/** format fills {message} in a string. */
export function format(s: string, message: string): string {
  return s.replace("{message}", message);
}

/** textColor picks black or white text, whichever contrasts more with bg. */
export function textColor(bg: string): string {
  let h = bg.slice(1);
  if (h.length === 3) h = h.split("").map((c) => c + c).join("");
  const ch = [0, 2, 4].map((i) => {
    const c = parseInt(h.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
  });
  const lum = 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
  // Contrast with white: 1.05/(lum+0.05); with black: (lum+0.05)/0.05.
  return 1.05 / (lum + 0.05) >= (lum + 0.05) / 0.05 ? "#ffffff" : "#111111";
}
