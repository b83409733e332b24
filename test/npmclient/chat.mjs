// @ts-check
// chat.mjs: one text turn with parleyd through the official openai npm
// package's realtime WebSocket client (OpenAIRealtimeWS, built on `ws`).
// The SDK always dials wss://{baseURL}/realtime?model=M, so parleyd must
// serve TLS; the dev certificate is trusted through the `ca` option, which
// the SDK passes to the ws.WebSocket constructor unchanged.
//
// Environment:
//   PARLEY_BASE_URL   e.g. https://127.0.0.1:8443/v1 (required)
//   PARLEY_API_KEY    the gateway's API key (required)
//   PARLEY_CA_FILE    PEM certificate to trust (optional; without it the
//                     system store / NODE_EXTRA_CA_CERTS apply)
//   PARLEY_QUESTION   the user's message (default "What is Parley?")
//   PARLEY_MODEL      the agent id (default "assistant")
//   PARLEY_TIMEOUT_MS overall deadline (default 20000)
//
// On response.done it prints one JSON line to stdout:
//   {"session_id":…,"response_id":…,"text":…,"final_text":…,"status":…,"events":[…]}
// and exits 0 once the socket is closed. Any `error` event, an early close or
// the deadline exits non-zero with a message on stderr.

import fs from 'node:fs';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';

/** @param {string} msg */
function fail(msg, code = 1) {
  process.stderr.write(`chat.mjs: ${msg}\n`);
  process.exit(code);
}

/** @param {string} name */
function required(name) {
  const v = process.env[name];
  if (!v) fail(`${name} is not set`, 2);
  return /** @type {string} */ (v);
}

const baseURL = required('PARLEY_BASE_URL');
const apiKey = required('PARLEY_API_KEY');
const question = process.env.PARLEY_QUESTION || 'What is Parley?';
const model = process.env.PARLEY_MODEL || 'assistant';
const timeoutMs = Number(process.env.PARLEY_TIMEOUT_MS || 20000);

/** @type {import('ws').ClientOptions} */
const wsOptions = {};
if (process.env.PARLEY_CA_FILE) {
  try {
    wsOptions.ca = fs.readFileSync(process.env.PARLEY_CA_FILE);
  } catch (err) {
    fail(`reading PARLEY_CA_FILE: ${/** @type {Error} */ (err).message}`, 2);
  }
}

const timer = setTimeout(() => {
  fail(`timed out after ${timeoutMs} ms; events so far: ${JSON.stringify(events)}`);
}, timeoutMs);

const client = new OpenAI({ apiKey, baseURL });
const rt = new OpenAIRealtimeWS({ model, options: wsOptions }, client);

/** @type {string[]} */
const events = [];
let sessionID = '';
let responseID = '';
let text = '';
let finished = false;

rt.on('error', (err) => {
  const detail = err.error ? ` (server error event: ${JSON.stringify(err.error)})` : '';
  const cause = /** @type {any} */ (err).cause;
  fail(`realtime error: ${err.message}${detail}${cause && cause.code ? ` [${cause.code}]` : ''}`);
});

// A refused handshake (401, 400 ...) carries a JSON error body; show it.
// With this listener ws leaves the response to us instead of raising
// "Unexpected server response".
rt.socket.on('unexpected-response', (_req, res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (chunk) => {
    body += chunk;
  });
  res.on('end', () => {
    fail(`handshake refused: HTTP ${res.statusCode} ${res.statusMessage ?? ''} ${body.trim()}`);
  });
});

rt.socket.on('close', (code, reason) => {
  if (!finished) {
    fail(`connection closed before response.done: code=${code} reason=${JSON.stringify(reason.toString())}; events: ${JSON.stringify(events)}`);
  }
  clearTimeout(timer);
});

// Every server event, in arrival order.
rt.on('event', (event) => {
  events.push(event.type);
});

rt.on('session.created', (event) => {
  // The SDK types session.created's session as the create *request*, which
  // has no id; the server (OpenAI's and Parley's) sends one.
  sessionID = /** @type {{ id?: string }} */ (event.session).id ?? '';
  if (!sessionID) fail(`session.created without session.id: ${JSON.stringify(event)}`);
  rt.send({
    type: 'conversation.item.create',
    item: {
      type: 'message',
      role: 'user',
      content: [{ type: 'input_text', text: question }],
    },
  });
  rt.send({ type: 'response.create' });
});

rt.on('response.created', (event) => {
  if (!responseID) responseID = event.response.id ?? '';
});

rt.on('response.output_text.delta', (event) => {
  if (event.response_id === responseID) text += event.delta;
});

rt.on('response.done', (event) => {
  const resp = event.response;
  if (resp.id !== responseID) return;
  finished = true;
  let finalText = '';
  for (const item of resp.output ?? []) {
    if (item.type !== 'message') continue;
    for (const part of item.content ?? []) {
      if (part.type === 'output_text' && part.text) finalText += part.text;
    }
  }
  process.stdout.write(
    JSON.stringify({
      session_id: sessionID,
      response_id: responseID,
      text,
      final_text: finalText,
      status: resp.status,
      events,
    }) + '\n',
  );
  rt.close();
});
