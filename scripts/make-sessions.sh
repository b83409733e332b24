#!/usr/bin/env bash
# Makes the committed session recordings in testdata/sessions with
# `parley record` (docs/RECORDING.md) from the spoken fixtures in
# testdata/audio and the text script testdata/sessions/text_only.txt, for
# `parley replay` and its end-to-end test. Deterministic: the recordings are
# Opus-encoded by the linked libopus and dated by SOURCE_DATE_EPOCH (default:
# the last commit of testdata/audio), so the same tree makes the same files.
set -euo pipefail
cd "$(dirname "$0")/.."
out=testdata/sessions
audio=testdata/audio
mkdir -p "$out"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct -- "$audio" 2>/dev/null || true)
  [ -n "$SOURCE_DATE_EPOCH" ] || SOURCE_DATE_EPOCH=0
fi
export SOURCE_DATE_EPOCH

record() { go run ./cmd/parley record "$@"; }

# Typed questions with expected answers (the script holds the expectations).
record -o "$out/text_only.jsonl" -name "text only" "$out/text_only.txt"

# One spoken question, as Opus packets.
record -o "$out/voice_question.jsonl" -name "voice question" -format opus \
  -expect-transcript parley -expect-reply Parley "$audio/what_is_parley.wav"

# A question, then a second one spoken 2 s after the first one's
# speech_stopped, while the agent is answering it: a barge-in.
record -o "$out/interruption.jsonl" -name "interruption" -format opus -barge-in 2s \
  "$audio/what_is_parley.wav" "$audio/long_answer_stop.wav"

# A greeting followed by 10 s of silence, then a question.
record -o "$out/long_silence.jsonl" -name "long silence" -format opus -trail 10s \
  -expect-reply "" -expect-reply Parley "$audio/hello.wav" "$audio/what_is_parley.wav"
