// The conversation: the messages the visitor sees, and the session that
// carries them. It owns the transport; when the transport drops it
// reconnects and replays the conversation into the new session, so the
// agent keeps its context and nothing is shown or sent twice.

import { format, type Options } from "./options";
import { Refused, Unavailable, type CloseKind, type Handlers, type RealtimeEvent, type Transport } from "./transport";

/** Dialer opens a session: a WebRTC call with mic when voice, else a
 * WebSocket (transport.ts's dial; the tests give a fake). */
export type Dialer = (voice: boolean, mic: MediaStream | null, h: Handlers) => Promise<Transport>;

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
  /** message shows m (new or changed); a new one goes after `after`, or
   * at the end. */
  message(m: Message, after?: Message): void;
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
/** A session that stayed up this long resets the retry budget. */
const stableAfterMs = 30000;
/** "Thinking" after the visitor stopped speaking falls back to
 * "listening" when nothing comes of it (noise, an empty transcript). */
const thinkingTimeoutMs = 8000;

// Error codes that need no word to the visitor.
const quietErrors = new Set([
  "response_cancel_not_active", "no_active_response", "session_idle_timeout", "session_expired",
  "conversation_already_has_active_response",
]);
// Errors after which the session's end is a normal one, not a drop.
const endingErrors = new Set(["session_idle_timeout", "session_expired"]);

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
  private stableTimer = 0;
  private thinkingTimer = 0;
  private dropped = false;
  private lastError = "";
  private lastErrorMessage = "";
  /** pendingCreate is the event_id of our response.create until the
   * response starts (or is refused); activeResponse the response's id. */
  private pendingCreate: string | null = null;
  private activeResponse: string | null = null;
  /** asked is the visitor's message our last response.create was for (in
   * this session): it is not asked for again, whatever became of it. */
  private asked: Message | null = null;
  /** current is the answer being streamed; speaking, the one playing. */
  private current: Message | null = null;
  private speaking: Message | null = null;
  private byItem = new Map<string, Message>();
  private mic: MediaStream | null = null;
  /** voiceStart numbers microphone requests; ending voice or destroying
   * the widget while the browser asks makes the answer moot. */
  private voiceStart = 0;
  private voiceState: VoiceState = "off";
  private destroyed = false;
  private events = 0;

  constructor(
    private o: Options,
    private view: View,
    private emit: Emit,
    private dial: Dialer,
    private audio: { srcObject: MediaProvider | null },
  ) {
    if (o.greeting) this.add({ role: "assistant", text: o.greeting, done: true, local: true });
  }

  get voice(): VoiceState {
    return this.voiceState;
  }

  private get busy(): boolean {
    return this.pendingCreate !== null || this.activeResponse !== null;
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
      return;
    }
    // A new message is worth a new round of attempts.
    if (!this.connecting) this.retry();
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
      const t = await this.dial(voice, this.mic, handlers);
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
        return;
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
   * normal end of an idle session is not a drop: the next message opens
   * a new session, quietly. */
  private lost(reason: string, how: CloseKind): void {
    if (endingErrors.has(this.lastError)) how = "idle";
    this.t = null;
    this.ready = false;
    this.connecting = false;
    this.pendingCreate = this.activeResponse = null;
    this.speaking = null;
    clearTimeout(this.stableTimer);
    clearTimeout(this.thinkingTimer);
    this.dropPendingSpeech();
    this.emit("status", { status: "disconnected", reason });
    this.serial++; // a late event of the old transport must not count
    if (how === "idle") {
      if (this.mode === "voice") this.endVoice(this.o.strings.callEnded);
      else if (this.unanswered()) this.retry();
      return;
    }
    if (this.mode === "voice") this.setVoice("connecting");
    if (how === "final") {
      // The server's error event says why better than the close reason.
      const why = this.lastErrorMessage || reason;
      if (this.mode === "voice") this.endVoice(this.o.strings.voiceFailed);
      this.view.status(format(this.o.strings.refused, why), "error", false);
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
    this.lastError = this.lastErrorMessage = "";
    this.asked = null; // an answer the drop cut off is asked for once more
    clearTimeout(this.stableTimer);
    this.stableTimer = window.setTimeout(() => (this.attempt = 0), stableAfterMs);
    t.send({
      type: "session.update",
      session: { type: "realtime", output_modalities: [this.mode === "voice" ? "audio" : "text"] },
    });
    for (const m of this.history) {
      if (!m.local && m.text && m.done) this.sendItem(m);
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

  private lastUser(doneOnly: boolean): Message | null {
    for (let i = this.history.length - 1; i >= 0; i--) {
      const m = this.history[i];
      if (m.role === "user" && (m.done || !doneOnly)) return m;
    }
    return null;
  }

  /** answered reports whether a finished answer follows u. */
  private answered(u: Message): boolean {
    for (let i = this.history.indexOf(u) + 1; i < this.history.length; i++) {
      const m = this.history[i];
      if (m.role === "assistant" && m.done && !m.local) return true;
    }
    return false;
  }

  /** unanswered reports whether the visitor's last message has no
   * finished answer. */
  private unanswered(): boolean {
    const u = this.lastUser(true);
    return u !== null && !this.answered(u);
  }

  /** respond asks for an answer to the visitor's last message when it has
   * none, none is under way, and it was not asked for already: an answer
   * that failed or was stopped is not asked for again by itself. */
  private respond(): void {
    if (!this.t || !this.ready || this.busy) return;
    const u = this.lastUser(true);
    if (!u || u === this.asked || this.answered(u)) return;
    this.asked = u;
    this.pendingCreate = `evt_w${++this.events}`;
    this.t.send({ type: "response.create", event_id: this.pendingCreate });
  }

  /** answerFor starts (or, after a drop, reuses) the bubble of the answer
   * to u, right after u. */
  private answerFor(u: Message | null): Message {
    const from = u ? this.history.indexOf(u) + 1 : 0;
    for (let i = from; i < this.history.length; i++) {
      const m = this.history[i];
      if (m.role === "assistant" && !m.done && !m.local) {
        m.text = "";
        this.view.message(m);
        return m;
      }
    }
    let after = u ?? undefined;
    // After u and any earlier answers to it, before the next question.
    for (let i = from; i < this.history.length && this.history[i].role === "assistant"; i++) after = this.history[i];
    return this.add({ role: "assistant", text: "", done: false, local: false }, after);
  }

  private add(p: Omit<Message, "id" | "interrupted">, after?: Message): Message {
    const m: Message = { id: newID(), interrupted: false, ...p };
    const at = after ? this.history.indexOf(after) + 1 : 0;
    if (after && at > 0) this.history.splice(at, 0, m);
    else this.history.push(m);
    this.view.message(m, after && at > 0 ? after : undefined);
    return m;
  }

  private drop(m: Message): void {
    const i = this.history.indexOf(m);
    if (i >= 0) this.history.splice(i, 1);
    this.view.remove(m);
  }

  /** dropPendingSpeech removes the visitor's words still being
   * transcribed when the session ends: their transcript will not come. */
  private dropPendingSpeech(): void {
    for (const [id, m] of this.byItem) {
      if (!m.done) this.drop(m);
      this.byItem.delete(id);
    }
  }

  private setVoice(s: VoiceState): void {
    clearTimeout(this.thinkingTimer);
    if (s === "thinking") {
      this.thinkingTimer = window.setTimeout(() => {
        if (this.voiceState === "thinking" && !this.busy) this.setVoice("listening");
      }, thinkingTimeoutMs);
    }
    if (this.voiceState === s) return;
    this.voiceState = s;
    this.view.voice(s);
    this.emit("state", { voice: s });
  }

  /** idle moves a call back to listening when nothing is under way. */
  private idle(): void {
    if (this.mode === "voice" && !this.busy && this.speaking === null) this.setVoice("listening");
  }

  private handle(ev: RealtimeEvent): void {
    switch (ev.type) {
      case "session.created":
        this.onSession();
        break;
      case "error": {
        const code = String(ev.error?.code ?? "");
        const message = String(ev.error?.message ?? "unknown error");
        this.lastError = code;
        this.lastErrorMessage = message;
        const ours = this.pendingCreate !== null && ev.error?.event_id === this.pendingCreate;
        if (ours) {
          // Our response.create was refused: typically a response the
          // server started itself (a spoken turn) is under way; ask again
          // when it is done.
          this.pendingCreate = null;
          this.asked = null;
        }
        if (quietErrors.has(code)) break;
        this.emit("error", { message, code });
        this.view.status(format(this.o.strings.failed, message), "error", false);
        break;
      }
      case "response.created": {
        // Ours answers the message we asked about; one the server started
        // itself (a spoken turn) answers the latest.
        const ours = this.pendingCreate !== null;
        this.pendingCreate = null;
        this.activeResponse = String(ev.response?.id ?? "");
        this.current = this.answerFor(ours ? this.asked : this.lastUser(false));
        if (this.mode === "voice" && this.voiceState !== "speaking") this.setVoice("thinking");
        break;
      }
      case "response.output_text.delta":
      case "response.output_audio_transcript.delta": {
        if (!this.current) this.current = this.answerFor(this.lastUser(false));
        this.current.text += String(ev.delta ?? "");
        this.view.message(this.current);
        this.emit("delta", { text: String(ev.delta ?? "") });
        break;
      }
      case "response.done": {
        const status = String(ev.response?.status ?? "");
        const m = this.current;
        this.current = null;
        this.activeResponse = this.pendingCreate = null;
        if (m) {
          if (!m.text) {
            this.drop(m);
          } else {
            m.done = true;
            this.view.message(m);
            this.emit("message", { role: "assistant", text: m.text });
            if (status === "cancelled" || status === "incomplete") this.interrupted(m);
          }
        }
        if (status === "failed") {
          const message = String(ev.response?.status_details?.error?.message ?? "the answer failed");
          this.view.status(format(this.o.strings.failed, message), "error", false);
        }
        this.idle();
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
        this.byItem.delete(ev.item_id);
        m.text = String(ev.transcript ?? "").trim();
        if (!m.text) {
          this.drop(m);
          this.idle();
          break;
        }
        m.done = true;
        this.view.message(m);
        this.emit("message", { role: "user", text: m.text, spoken: true });
        break;
      }
      case "conversation.item.input_audio_transcription.failed": {
        const m = this.byItem.get(ev.item_id);
        this.byItem.delete(ev.item_id);
        if (m) this.drop(m);
        this.idle();
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
        if (this.mode === "voice") this.setVoice(this.busy ? "thinking" : "listening");
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
    if (this.mode === "voice" || this.voiceState !== "off" || this.destroyed) return;
    if (!navigator.mediaDevices?.getUserMedia || typeof RTCPeerConnection === "undefined") {
      this.view.status(this.o.strings.voiceUnsupported, "error", false);
      return;
    }
    const start = ++this.voiceStart;
    this.setVoice("connecting");
    let mic: MediaStream;
    try {
      mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (e) {
      if (start !== this.voiceStart) return;
      const denied = (e as Error).name === "NotAllowedError" || (e as Error).name === "SecurityError";
      this.setVoice("off");
      this.emit("error", { message: (e as Error).message, code: denied ? "microphone_denied" : "microphone_failed" });
      this.view.status(denied ? this.o.strings.micDenied : this.o.strings.voiceFailed, "error", false);
      return;
    }
    if (start !== this.voiceStart || this.destroyed) {
      // Voice was ended (or the widget removed) while the browser asked.
      for (const tr of mic.getTracks()) tr.stop();
      return;
    }
    this.mic = mic;
    this.switchTo("voice");
    this.connect();
  }

  /** endVoice hangs up (or stops asking for the microphone) and goes back
   * to text, reconnecting on the next message; message says why. */
  endVoice(message = ""): void {
    this.voiceStart++;
    if (this.mode === "voice") {
      for (const tr of this.mic?.getTracks() ?? []) tr.stop();
      this.mic = null;
      this.audio.srcObject = null;
      this.switchTo("text");
    }
    if (this.voiceState === "off") return;
    this.setVoice("off");
    this.view.status(message, message ? "error" : "none", false);
  }

  private switchTo(mode: "text" | "voice"): void {
    this.serial++;
    clearTimeout(this.retryTimer);
    clearTimeout(this.stableTimer);
    this.t?.close();
    this.t = null;
    this.ready = false;
    this.connecting = false;
    this.pendingCreate = this.activeResponse = null;
    this.speaking = null;
    this.attempt = 0;
    this.dropped = false;
    this.dropPendingSpeech();
    const last = this.lastAnswer();
    if (last && !last.done) {
      if (last.text) {
        last.done = true;
        this.interrupted(last);
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
    clearTimeout(this.stableTimer);
    clearTimeout(this.thinkingTimer);
    this.t?.close();
    this.t = null;
  }
}
