// The conversation: the messages the visitor sees, and the session that
// carries them. It owns the transport; when the transport drops it
// reconnects and replays the conversation into the new session, so the
// agent keeps its context and nothing is shown or sent twice.

import { format, type Options } from "./options";
import { mintKey, openCall, openSocket, Refused, Unavailable, type CloseKind, type RealtimeEvent, type Transport } from "./transport";

export type Role = "user" | "assistant";

export interface Message {
  id: string;
  role: Role;
  text: string;
  done: boolean;
  interrupted: boolean;
  /** local: shown by the widget itself (the greeting), never sent. */
  local: boolean;
}

export type VoiceState = "off" | "connecting" | "listening" | "hearing" | "thinking" | "speaking";
export type StatusKind = "none" | "info" | "error";

export interface View {
  message(m: Message): void;
  remove(m: Message): void;
  status(text: string, kind: StatusKind, retry: boolean): void;
  voice(state: VoiceState): void;
}

export type Emit = (name: string, detail: unknown) => void;

/** Delays between reconnection attempts (about 15 s in all); after the
 * last, the widget says it could not reconnect, offers a retry, and tries
 * again by itself when the browser comes back online. A call gives up
 * sooner: the visitor is waiting, and text is a fallback. */
const retryDelays = [250, 1000, 2000, 4000, 8000];
const voiceRetries = 2;

// Error codes that need no word to the visitor.
const quietErrors = new Set(["response_cancel_not_active", "no_active_response", "session_idle_timeout", "session_expired"]);

let seq = 0;
const newID = () => `m${++seq}`;

export class Conversation {
  readonly history: Message[] = [];
  private t: Transport | null = null;
  private mode: "text" | "voice" = "text";
  /** serial numbers connection attempts; callbacks of older ones are ignored. */
  private serial = 0;
  private connecting = false;
  private ready = false;
  private attempt = 0;
  private retryTimer = 0;
  private dropped = false;
  private activeResponse: string | null = null;
  private current: Message | null = null;
  /** speaking is the answer whose audio is playing. */
  private speaking: Message | null = null;
  private byItem = new Map<string, Message>();
  private mic: MediaStream | null = null;
  private voiceState: VoiceState = "off";
  private destroyed = false;

  constructor(
    private o: Options,
    private view: View,
    private emit: Emit,
    private audio: HTMLAudioElement,
  ) {
    if (o.greeting) this.add({ role: "assistant", text: o.greeting, done: true, local: true });
  }

  get voice(): VoiceState {
    return this.voiceState;
  }

  get responding(): boolean {
    return this.activeResponse !== null;
  }

  /** send adds the visitor's message and asks for an answer. */
  send(text: string): void {
    text = text.trim();
    if (!text || this.destroyed) return;
    const m = this.add({ role: "user", text, done: true, local: false });
    this.emit("message", { role: "user", text });
    if (this.ready && this.t) {
      this.sendItem(m);
      this.respond();
    } else {
      this.connect();
    }
  }

  /** connect opens a session unless one is open or opening. */
  connect(): void {
    if (this.destroyed || this.ready || this.connecting) return;
    clearTimeout(this.retryTimer);
    this.connecting = true;
    const serial = ++this.serial;
    void this.open(serial);
  }

  private onOnline = () => this.retry();

  /** retry is the visitor's "Try again". */
  retry(): void {
    window.removeEventListener("online", this.onOnline);
    this.attempt = 0;
    this.connect();
  }

  private async open(serial: number): Promise<void> {
    const voice = this.mode === "voice";
    this.view.status(this.dropped ? this.o.strings.reconnecting : this.o.strings.connecting, "info", false);
    const handlers = {
      event: (ev: RealtimeEvent) => serial === this.serial && this.handle(ev),
      closed: (reason: string, how: CloseKind) => serial === this.serial && this.lost(reason, how),
    };
    try {
      const ek = await mintKey(this.o, voice);
      if (serial !== this.serial) return;
      const t = voice && this.mic
        ? await openCall(this.o, ek, this.mic, this.audio, handlers)
        : await openSocket(this.o, ek, handlers);
      if (serial !== this.serial) {
        t.close();
        return;
      }
      this.t = t; // ready once session.created arrives
    } catch (e) {
      if (serial !== this.serial) return;
      this.connecting = false;
      this.failed(e as Error);
    }
  }

  /** failed handles a connection attempt that did not succeed: a refusal
   * is explained, a network or server trouble retried, and anything else
   * (the browser's WebRTC failing, say) is explained with a retry button. */
  private failed(e: Error): void {
    if (e instanceof Unavailable) {
      this.scheduleRetry(e.retryAfterMs, e.message);
      return;
    }
    const code = e instanceof Refused ? e.code : "failed";
    this.emit("error", { message: e.message, code });
    if (this.mode === "voice") {
      this.endVoice(`${this.o.strings.voiceFailed} (${e.message})`);
      return;
    }
    if (e instanceof Refused) this.view.status(format(this.o.strings.refused, e.message), "error", false);
    else this.view.status(format(this.o.strings.failed, e.message), "error", true);
  }

  private scheduleRetry(atLeast: number, why: string): void {
    const limit = this.mode === "voice" ? voiceRetries : retryDelays.length;
    if (this.attempt >= limit) {
      this.emit("error", { message: why, code: "offline" });
      if (this.mode === "voice") {
        this.endVoice(this.o.strings.voiceFailed);
      }
      this.dropped = true;
      this.view.status(this.o.strings.offline, "error", true);
      window.addEventListener("online", this.onOnline, { once: true });
      return;
    }
    const delay = Math.max(atLeast, retryDelays[this.attempt++]);
    this.dropped = true;
    this.view.status(this.o.strings.reconnecting, "info", false);
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }

  /** lost: the open transport ended without the widget closing it. A
   * normal end of an idle text session is not a drop: the next message
   * opens a new session, quietly. */
  private lost(reason: string, how: CloseKind): void {
    this.t = null;
    this.ready = false;
    this.connecting = false;
    this.activeResponse = null;
    this.emit("status", { status: "disconnected", reason });
    this.serial++; // a late event of the old transport must not count
    if (how === "idle" && this.mode === "text" && !this.unanswered()) return;
    if (this.mode === "voice") this.setVoice("connecting");
    if (how === "final") {
      this.view.status(format(this.o.strings.refused, reason), "error", false);
      if (this.mode === "voice") this.endVoice(this.o.strings.voiceFailed);
      return;
    }
    this.dropped = true;
    this.scheduleRetry(0, reason);
  }

  /** ready: a new session exists. Replay the conversation into it. */
  private onSession(): void {
    const t = this.t;
    if (!t) return;
    this.ready = true;
    this.connecting = false;
    this.attempt = 0;
    t.send({
      type: "session.update",
      session: { type: "realtime", output_modalities: [this.mode === "voice" ? "audio" : "text"] },
    });
    for (const m of this.history) {
      if (!m.local && m.text && m.done) this.sendItem(m);
    }
    // An answer cut off by the drop is asked for again, into its bubble.
    const last = this.history[this.history.length - 1];
    if (last && last.role === "assistant" && !last.done) {
      this.current = last;
    }
    this.respond();
    if (this.dropped) {
      this.dropped = false;
      this.view.status(this.o.strings.reconnected, "info", false);
      this.emit("status", { status: "reconnected" });
    } else {
      this.view.status("", "none", false);
      this.emit("status", { status: "connected" });
    }
    if (this.mode === "voice") this.setVoice("listening");
  }

  private sendItem(m: Message): void {
    this.t?.send({
      type: "conversation.item.create",
      item: {
        type: "message",
        role: m.role,
        content: [{ type: m.role === "user" ? "input_text" : "output_text", text: m.text }],
      },
    });
  }

  /** unanswered reports whether the visitor's last message has no
   * finished answer. */
  private unanswered(): boolean {
    for (let i = this.history.length - 1; i >= 0; i--) {
      const m = this.history[i];
      if (m.local) continue;
      if (m.role === "assistant" && m.done) return false;
      if (m.role === "user" && m.done) return true;
    }
    return false;
  }

  /** respond asks for an answer when the visitor's last message has none
   * and no answer is under way. */
  private respond(): void {
    if (!this.t || !this.ready || this.activeResponse !== null || !this.unanswered()) return;
    this.t.send({ type: "response.create" });
    this.activeResponse = ""; // until response.created names it
  }

  private add(p: Omit<Message, "id" | "interrupted">): Message {
    const m: Message = { id: newID(), interrupted: false, ...p };
    this.history.push(m);
    this.view.message(m);
    return m;
  }

  private drop(m: Message): void {
    const i = this.history.indexOf(m);
    if (i >= 0) this.history.splice(i, 1);
    this.view.remove(m);
  }

  private setVoice(s: VoiceState): void {
    if (this.voiceState === s) return;
    this.voiceState = s;
    this.view.voice(s);
    this.emit("state", { voice: s });
  }

  private handle(ev: RealtimeEvent): void {
    switch (ev.type) {
      case "session.created":
        this.onSession();
        break;
      case "error": {
        const code = String(ev.error?.code ?? "");
        if (quietErrors.has(code)) break;
        const message = String(ev.error?.message ?? "unknown error");
        this.emit("error", { message, code });
        this.view.status(format(this.o.strings.failed, message), "error", false);
        break;
      }
      case "response.created": {
        this.activeResponse = String(ev.response?.id ?? "");
        const last = this.history[this.history.length - 1];
        if (this.current === null && last && last.role === "assistant" && !last.done) this.current = last;
        if (this.current) {
          this.current.text = "";
          this.view.message(this.current);
        }
        if (this.mode === "voice" && this.voiceState !== "speaking") this.setVoice("thinking");
        break;
      }
      case "response.output_text.delta":
      case "response.output_audio_transcript.delta": {
        if (!this.current) this.current = this.add({ role: "assistant", text: "", done: false, local: false });
        this.current.text += String(ev.delta ?? "");
        this.view.message(this.current);
        this.emit("delta", { text: String(ev.delta ?? "") });
        break;
      }
      case "response.done": {
        const status = String(ev.response?.status ?? "");
        const m = this.current;
        this.current = null;
        this.activeResponse = null;
        if (m) {
          if (!m.text) {
            this.drop(m);
          } else {
            m.done = true;
            m.interrupted ||= status === "cancelled" || status === "incomplete";
            this.view.message(m);
            this.emit("message", { role: "assistant", text: m.text, interrupted: m.interrupted });
          }
        }
        if (status === "failed") {
          const message = String(ev.response?.status_details?.error?.message ?? "the answer failed");
          this.view.status(format(this.o.strings.failed, message), "error", false);
        }
        if (this.mode === "voice" && this.voiceState === "thinking") this.setVoice("listening");
        this.respond();
        break;
      }
      case "conversation.item.truncated":
        this.interrupted(this.current ?? this.speaking);
        break;
      case "conversation.item.added": {
        const it = ev.item;
        if (it?.role === "user" && it?.content?.[0]?.type === "input_audio" && it.id && !this.byItem.has(it.id)) {
          this.byItem.set(it.id, this.add({ role: "user", text: "", done: false, local: false }));
        }
        break;
      }
      case "conversation.item.input_audio_transcription.delta": {
        const m = this.byItem.get(ev.item_id);
        if (m && !m.done) {
          m.text += String(ev.delta ?? "");
          this.view.message(m);
        }
        break;
      }
      case "conversation.item.input_audio_transcription.completed": {
        let m = this.byItem.get(ev.item_id);
        if (!m) {
          m = this.add({ role: "user", text: "", done: false, local: false });
          this.byItem.set(ev.item_id, m);
        }
        m.text = String(ev.transcript ?? "").trim();
        if (!m.text) {
          this.drop(m);
          break;
        }
        m.done = true;
        this.view.message(m);
        this.emit("message", { role: "user", text: m.text, spoken: true });
        break;
      }
      case "conversation.item.input_audio_transcription.failed": {
        const m = this.byItem.get(ev.item_id);
        if (m) this.drop(m);
        break;
      }
      case "input_audio_buffer.speech_started":
        this.setVoice("hearing");
        break;
      case "input_audio_buffer.speech_stopped":
        this.setVoice("thinking");
        break;
      case "output_audio_buffer.started":
        this.speaking = this.current ?? this.lastAnswer();
        this.setVoice("speaking");
        break;
      case "output_audio_buffer.cleared":
      case "output_audio_buffer.stopped":
        if (ev.type === "output_audio_buffer.cleared") this.interrupted(this.speaking);
        this.speaking = null;
        if (this.mode === "voice") this.setVoice(this.activeResponse !== null ? "thinking" : "listening");
        break;
    }
  }

  private lastAnswer(): Message | null {
    const last = this.history[this.history.length - 1];
    return last && last.role === "assistant" && !last.local ? last : null;
  }

  /** interrupted marks an answer cut short (by the visitor's speech or the
   * stop button): what was shown may be more than what was heard. */
  private interrupted(m: Message | null): void {
    if (!m || m.interrupted) return;
    m.interrupted = true;
    this.view.message(m);
    this.emit("interrupted", { text: m.text });
  }

  /** interrupt stops the agent: the answer under way and its speech. */
  interrupt(): void {
    if (!this.t || !this.ready) return;
    if (this.activeResponse) this.t.send({ type: "response.cancel" });
    if (this.mode === "voice") this.t.send({ type: "output_audio_buffer.clear" });
  }

  /** startVoice asks for the microphone and moves the conversation to a
   * WebRTC call; on refusal or failure it stays in text and says why. */
  async startVoice(): Promise<void> {
    if (this.mode === "voice" || this.destroyed) return;
    if (!navigator.mediaDevices?.getUserMedia || typeof RTCPeerConnection === "undefined") {
      this.view.status(this.o.strings.voiceUnsupported, "error", false);
      return;
    }
    this.setVoice("connecting");
    try {
      this.mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (e) {
      const denied = (e as Error).name === "NotAllowedError" || (e as Error).name === "SecurityError";
      this.setVoice("off");
      this.emit("error", { message: (e as Error).message, code: denied ? "microphone_denied" : "microphone_failed" });
      this.view.status(denied ? this.o.strings.micDenied : this.o.strings.voiceFailed, "error", false);
      return;
    }
    this.switchTo("voice");
    this.connect();
  }

  /** endVoice hangs up and goes back to text (reconnecting on the next
   * message); message, when set, says why. */
  endVoice(message = ""): void {
    if (this.mode !== "voice") return;
    for (const tr of this.mic?.getTracks() ?? []) tr.stop();
    this.mic = null;
    this.audio.srcObject = null;
    this.switchTo("text");
    this.setVoice("off");
    this.view.status(message, message ? "error" : "none", false);
  }

  private switchTo(mode: "text" | "voice"): void {
    this.serial++;
    clearTimeout(this.retryTimer);
    this.t?.close();
    this.t = null;
    this.ready = false;
    this.connecting = false;
    this.activeResponse = null;
    this.attempt = 0;
    this.dropped = false;
    const last = this.history[this.history.length - 1];
    if (last && last.role === "assistant" && !last.done) {
      if (last.text) {
        last.done = true;
        last.interrupted = true;
        this.view.message(last);
      } else this.drop(last);
    }
    this.current = null;
    this.mode = mode;
  }

  destroy(): void {
    window.removeEventListener("online", this.onOnline);
    this.endVoice();
    this.destroyed = true;
    this.serial++;
    clearTimeout(this.retryTimer);
    this.t?.close();
    this.t = null;
  }
}
