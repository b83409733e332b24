// Transports to the gateway: a WebSocket for text, a WebRTC call for voice.
// Both carry the same realtime events (OpenAI Realtime API, GA dialect);
// the conversation does not care which one it talks through.

import type { Options } from "./options";

/** RealtimeEvent is one event of the realtime protocol. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type RealtimeEvent = { type: string; [k: string]: any };

/** Refused: the gateway said no, and asking again will not help. */
export class Refused extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

/** Unavailable: a network or server trouble that a retry may get past. */
export class Unavailable extends Error {
  constructor(message: string, readonly retryAfterMs = 0) {
    super(message);
  }
}

export type CloseKind = "retry" | "final" | "idle";

export interface Handlers {
  event(ev: RealtimeEvent): void;
  /** closed: the transport ended, by the server or the network (not when
   * the widget closed it itself). how: "retry" for a drop, "final" for a
   * refusal that asking again will not change, "idle" for a normal end
   * (the server ended an idle or too long session). */
  closed(reason: string, how: CloseKind): void;
}

export interface Transport {
  send(ev: RealtimeEvent): boolean;
  close(): void;
}

async function errorOf(resp: Response, what: string): Promise<Error> {
  let message = `${what}: HTTP ${resp.status}`;
  let code = "";
  try {
    const body = await resp.json();
    if (body?.error?.message) message = String(body.error.message);
    if (body?.error?.code) code = String(body.error.code);
  } catch {
    /* not JSON: keep the status */
  }
  if (resp.status === 429 || resp.status >= 500) {
    const ra = Number(resp.headers.get("Retry-After"));
    return new Unavailable(message, Number.isFinite(ra) && ra > 0 ? ra * 1000 : 0);
  }
  return new Refused(message, code);
}

/** mintKey gets an ephemeral key (ek_…) for one session: from the gateway
 * with the publishable key, or from the site's own token endpoint. */
export async function mintKey(o: Options, voice: boolean): Promise<string> {
  let resp: Response;
  try {
    if (o.tokenUrl) {
      resp = await fetch(o.tokenUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ agent: o.agent, voice }),
      });
    } else {
      resp = await fetch(`${o.gateway}/v1/realtime/client_secrets`, {
        method: "POST",
        credentials: "omit",
        headers: { Authorization: `Bearer ${o.key}`, "Content-Type": "application/json" },
        body: JSON.stringify({
          session: { type: "realtime", model: o.agent, output_modalities: [voice ? "audio" : "text"] },
        }),
      });
    }
  } catch (e) {
    throw new Unavailable(`the gateway is unreachable (${(e as Error).message})`);
  }
  if (!resp.ok) throw await errorOf(resp, "client secret");
  const body = await resp.json().catch(() => null);
  const value = body?.value ?? body?.client_secret?.value;
  if (typeof value !== "string" || !value) throw new Refused("the token endpoint answered without a key", "bad_token");
  return value;
}

// Close codes after which trying again is pointless: the server refused
// the session (policy violation, unsupported data, too big).
const finalCodes = new Set([1002, 1003, 1007, 1008, 1009, 1010]);

/** openSocket opens a text session over WebSocket. It resolves once the
 * socket is open; the first event, session.created, follows. */
export function openSocket(o: Options, ek: string, h: Handlers): Promise<Transport> {
  const url = `${o.gateway.replace(/^http/, "ws")}/v1/realtime?model=${encodeURIComponent(o.agent)}`;
  return new Promise((resolve, reject) => {
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, ["realtime", `openai-insecure-api-key.${ek}`]);
    } catch (e) {
      reject(new Refused(`cannot open ${url}: ${(e as Error).message}`, "bad_gateway"));
      return;
    }
    let opened = false;
    let closing = false;
    const t: Transport = {
      send(ev) {
        if (ws.readyState !== WebSocket.OPEN) return false;
        ws.send(JSON.stringify(ev));
        return true;
      },
      close() {
        closing = true;
        ws.close(1000, "closed by the widget");
      },
    };
    ws.onopen = () => {
      opened = true;
      resolve(t);
    };
    ws.onmessage = (m) => {
      let ev: RealtimeEvent;
      try {
        ev = JSON.parse(String(m.data));
      } catch {
        return; // not an event: ignored, as the protocol says
      }
      h.event(ev);
    };
    ws.onclose = (c) => {
      if (!opened) {
        reject(new Unavailable(`the connection to the gateway failed (code ${c.code})`));
        return;
      }
      if (closing) return;
      h.closed(c.reason || `code ${c.code}`, c.code === 1000 ? "idle" : finalCodes.has(c.code) ? "final" : "retry");
    };
  });
}

/** dial mints a key and opens a session with it: a call with mic when
 * voice, else a WebSocket. */
export async function dial(o: Options, audio: HTMLAudioElement, voice: boolean, mic: MediaStream | null, h: Handlers): Promise<Transport> {
  const ek = await mintKey(o, voice);
  return voice && mic ? openCall(o, ek, mic, audio, h) : openSocket(o, ek, h);
}

/** Call is a WebRTC call: the microphone goes up, the agent's voice comes
 * down on the remote track, and events travel on the oai-events channel. */
export async function openCall(o: Options, ek: string, mic: MediaStream, audio: HTMLAudioElement, h: Handlers): Promise<Transport> {
  const pc = new RTCPeerConnection();
  let closing = false;
  let ended = false;
  const end = (reason: string) => {
    if (ended || closing) return;
    ended = true;
    h.closed(reason, "retry");
  };
  const t: Transport = {
    send(ev) {
      if (dc.readyState !== "open") return false;
      dc.send(JSON.stringify(ev));
      return true;
    },
    close() {
      closing = true;
      try {
        dc.close();
      } finally {
        pc.close();
      }
    },
  };
  pc.ontrack = (e) => {
    audio.srcObject = e.streams[0] ?? new MediaStream([e.track]);
  };
  for (const track of mic.getAudioTracks()) pc.addTrack(track, mic);
  const dc = pc.createDataChannel("oai-events");
  dc.onmessage = (m) => {
    let ev: RealtimeEvent;
    try {
      ev = JSON.parse(String(m.data));
    } catch {
      return;
    }
    h.event(ev);
  };
  const opened = new Promise<void>((resolve, reject) => {
    dc.onopen = () => resolve();
    dc.onclose = () => {
      reject(new Unavailable("the call's data channel closed"));
      end("the call's data channel closed");
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") {
        reject(new Unavailable("the call could not connect (ICE or DTLS failed)"));
        end("the call's connection failed");
      }
    };
  });
  try {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    let resp: Response;
    try {
      resp = await fetch(`${o.gateway}/v1/realtime/calls?model=${encodeURIComponent(o.agent)}`, {
        method: "POST",
        credentials: "omit",
        headers: { Authorization: `Bearer ${ek}`, "Content-Type": "application/sdp" },
        body: offer.sdp,
      });
    } catch (e) {
      throw new Unavailable(`the gateway is unreachable (${(e as Error).message})`);
    }
    if (!resp.ok) throw await errorOf(resp, "call");
    await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
    let timer = 0;
    await Promise.race([
      opened,
      new Promise((_, reject) => {
        timer = window.setTimeout(() => reject(new Unavailable("the call did not connect within 15 s")), 15000);
      }),
    ]).finally(() => clearTimeout(timer));
  } catch (e) {
    closing = true;
    pc.close();
    throw e;
  }
  return t;
}
