// Unit tests of the conversation's state machine against a fake gateway,
// run by node (web's TestWidgetLogic bundles this file with esbuild and
// runs `node --test`). The browser tests cover the real transports.

import test, { after } from "node:test";
import assert from "node:assert/strict";

// The globals the conversation touches, before it is imported.
const g = globalThis as any;
g.window = g;
g.addEventListener = () => {};
g.removeEventListener = () => {};
g.RTCPeerConnection = class {};
let micStops = 0;
let micRequest: { resolve: (s: any) => void; reject: (e: any) => void } | null = null;
Object.defineProperty(g, "navigator", {
  value: {
    mediaDevices: {
      getUserMedia: () => new Promise((resolve, reject) => (micRequest = { resolve, reject })),
    },
  },
});
const fakeMic = () => ({ getTracks: () => [{ stop: () => micStops++ }], getAudioTracks: () => [] });

import { Conversation, type Message, type VoiceState } from "../src/conversation";
import { defaultStrings, type Options } from "../src/options";
import type { Handlers, RealtimeEvent } from "../src/transport";

const options: Options = {
  gateway: "http://gw.test", key: "pk_test", tokenUrl: "", agent: "assistant", position: "right", color: "#1d4ed8",
  title: "t", greeting: "", voice: true, open: false, strings: defaultStrings,
};

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

const rigs: Array<{ c: Conversation }> = [];
after(() => rigs.forEach((r) => r.c.destroy()));

/** rig is a conversation wired to a fake gateway and a fake view. */
function rig() {
  const sent: RealtimeEvent[] = [];
  const order: Message[] = [];
  const states: VoiceState[] = [];
  const statuses: string[] = [];
  const events: Array<[string, any]> = [];
  const r = {
    sent, order, states, statuses, events,
    dials: 0,
    h: null as Handlers | null,
    view: {
      message(m: Message, after?: Message) {
        if (order.includes(m)) return;
        const i = after ? order.indexOf(after) : -1;
        if (i >= 0) order.splice(i + 1, 0, m);
        else order.push(m);
      },
      remove(m: Message) {
        const i = order.indexOf(m);
        if (i >= 0) order.splice(i, 1);
      },
      status(text: string) {
        statuses.push(text);
      },
      voice(s: VoiceState) {
        states.push(s);
      },
    },
    server(ev: RealtimeEvent) {
      r.h!.event(ev);
    },
    creates: () => sent.filter((e) => e.type === "response.create"),
    texts: () => order.map((m) => `${m.role}:${m.text}${m.interrupted ? "!" : ""}`),
    c: null as unknown as Conversation,
  };
  r.c = new Conversation(
    options,
    r.view,
    (name, detail) => events.push([name, detail]),
    async (_voice, _mic, h) => {
      r.dials++;
      r.h = h;
      setTimeout(() => h.event({ type: "session.created" }), 0);
      return { send: (ev) => (sent.push(ev), true), close: () => {} };
    },
    { srcObject: null },
  );
  rigs.push(r);
  return r;
}

/** answer plays a whole response from the server. */
function answer(r: ReturnType<typeof rig>, text: string, status = "completed") {
  r.server({ type: "response.created", response: { id: "resp" } });
  if (text) r.server({ type: "response.output_text.delta", delta: text });
  r.server({ type: "response.done", response: { status } });
}

test("a message is answered once", async () => {
  const r = rig();
  r.c.send("Hi");
  await tick(5);
  assert.equal(r.creates().length, 1);
  answer(r, "Hello!");
  assert.deepEqual(r.texts(), ["user:Hi", "assistant:Hello!"]);
  assert.equal(r.creates().length, 1);
});

test("a failed answer is not asked for again", async () => {
  const r = rig();
  r.c.send("Hi");
  await tick(5);
  for (let i = 0; i < 3; i++) answer(r, "", "failed");
  assert.equal(r.creates().length, 1, "response.create sent again after a failure");
  assert.deepEqual(r.texts(), ["user:Hi"]);
});

test("stop is not undone", async () => {
  const r = rig();
  r.c.send("Hi");
  await tick(5);
  r.server({ type: "response.created", response: { id: "resp" } });
  r.server({ type: "response.output_text.delta", delta: "Hel" });
  r.c.interrupt();
  assert.ok(r.sent.some((e) => e.type === "response.cancel"));
  r.server({ type: "response.done", response: { status: "cancelled" } });
  assert.equal(r.creates().length, 1);
  assert.deepEqual(r.texts(), ["user:Hi", "assistant:Hel!"]);
  assert.ok(r.events.some(([n]) => n === "interrupted"));
});

test("a second message before the first answer is answered, in order", async () => {
  const r = rig();
  r.c.send("Hi");
  await tick(5);
  r.c.send("What are your hours?");
  assert.equal(r.creates().length, 1, "asked while an answer is pending");
  answer(r, "Hello!");
  assert.equal(r.creates().length, 2);
  answer(r, "Nine to five.");
  assert.deepEqual(r.texts(), ["user:Hi", "assistant:Hello!", "user:What are your hours?", "assistant:Nine to five."]);
});

test("a drop mid-answer: replayed once, the answer asked again into its bubble", async () => {
  const r = rig();
  r.c.send("Hi");
  await tick(5);
  r.server({ type: "response.created", response: { id: "resp" } });
  r.server({ type: "response.output_text.delta", delta: "Hel" });
  r.h!.closed("network", "retry");
  await tick(400); // the first retry comes after 250 ms
  assert.equal(r.dials, 2);
  const items = r.sent.filter((e) => e.type === "conversation.item.create").map((e) => e.item.content[0].text);
  assert.deepEqual(items, ["Hi", "Hi"], "each session gets the visitor's message once");
  assert.equal(r.creates().length, 2);
  answer(r, "Hello!");
  assert.deepEqual(r.texts(), ["user:Hi", "assistant:Hello!"]);
  assert.ok(r.events.some(([n, d]) => n === "status" && d.status === "reconnected"));
});

test("a response.create refused by the server is asked again later", async () => {
  const r = rig();
  r.c.send("Hi");
  await tick(5);
  const id = r.creates()[0].event_id;
  r.server({ type: "error", error: { code: "conversation_already_has_active_response", message: "busy", event_id: id } });
  assert.equal(r.statuses.filter((s) => s.includes("busy")).length, 0, "a refused create is not shown as an error");
  answer(r, "An answer the server started itself.");
  // That answer came after "Hi", so "Hi" counts as answered.
  assert.equal(r.creates().length, 1);
});

test("an idle end is not a drop", async () => {
  const r = rig();
  r.c.send("Hi");
  await tick(5);
  answer(r, "Hello!");
  r.server({ type: "error", error: { code: "session_idle_timeout", message: "idle" } });
  r.h!.closed("idle timeout", "idle");
  await tick(400);
  assert.equal(r.dials, 1, "redialled after a normal end");
  assert.equal(r.events.filter(([n]) => n === "error").length, 0);
});

test("voice: noise that comes to nothing goes back to listening", async () => {
  const r = rig();
  const started = r.c.startVoice();
  micRequest!.resolve(fakeMic());
  await started;
  await tick(5);
  assert.equal(r.c.voice, "listening");
  r.server({ type: "input_audio_buffer.speech_started" });
  r.server({ type: "input_audio_buffer.speech_stopped" });
  r.server({ type: "conversation.item.added", item: { id: "item_1", role: "user", content: [{ type: "input_audio" }] } });
  assert.equal(r.c.voice, "thinking");
  r.server({ type: "conversation.item.input_audio_transcription.completed", item_id: "item_1", transcript: "" });
  assert.equal(r.c.voice, "listening");
  assert.deepEqual(r.texts(), []);
  r.c.endVoice();
});

test("voice: a transcript in flight at a drop is cleared", async () => {
  const r = rig();
  const started = r.c.startVoice();
  micRequest!.resolve(fakeMic());
  await started;
  await tick(5);
  r.server({ type: "conversation.item.added", item: { id: "item_1", role: "user", content: [{ type: "input_audio" }] } });
  assert.deepEqual(r.texts(), ["user:"]);
  r.h!.closed("network", "retry");
  assert.deepEqual(r.texts(), []);
  r.c.endVoice();
});

test("voice ended while the browser asks for the microphone releases it", async () => {
  const r = rig();
  const stops = micStops;
  const started = r.c.startVoice();
  r.c.endVoice();
  micRequest!.resolve(fakeMic());
  await started;
  assert.equal(micStops, stops + 1, "the microphone was not released");
  assert.equal(r.dials, 0);
  assert.equal(r.c.voice, "off");
});
