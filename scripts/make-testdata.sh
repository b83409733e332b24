#!/usr/bin/env bash
# Makes the spoken fixtures in testdata/audio with espeak-ng, sox and
# opusenc: each question is spoken with a voice and a speed, padded with
# silence, with light noise mixed in for some, written as a 24 kHz mono
# 16-bit WAV (the realtime protocol's audio/pcm rate) and as an Ogg Opus
# file (48 kHz, 20 ms packets: the audio/opus packet sequence).
# fixtures.tsv lists name, voice, words per minute, noise, reference text.
# Deterministic: same tools and versions give the same files.
set -euo pipefail
cd "$(dirname "$0")/.."
out=testdata/audio
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for t in espeak-ng sox opusenc; do
  command -v "$t" >/dev/null || { echo "make-testdata: $t is missing (make deps installs it)" >&2; exit 1; }
done

# name|voice|wpm|noise(0/1)|text
fixtures=(
  "what_is_parley|en-us|150|0|What is Parley?"
  "transcripts_kept|en-us|140|1|How long are transcripts kept?"
  "add_documents|en-gb|160|0|How do I add documents to an agent?"
  "privacy_audio|en-us+f3|150|1|Is my audio stored on disk?"
  "hello|en-us|170|0|Hello there."
  "long_answer_stop|en-us|150|0|Stop. Tell me something else."
)

printf 'name\tvoice\twpm\tnoise\ttext\n' > "$out/fixtures.tsv"
for f in "${fixtures[@]}"; do
  IFS='|' read -r name voice wpm noise text <<<"$f"
  espeak-ng -v "$voice" -s "$wpm" -w "$tmp/$name.raw.wav" "$text"
  # 24 kHz mono 16-bit, 0.6 s of silence before and 1.2 s after.
  sox "$tmp/$name.raw.wav" -r 24000 -c 1 -b 16 "$tmp/$name.pad.wav" pad 0.6 1.2
  if [ "$noise" = 1 ]; then
    len=$(soxi -D "$tmp/$name.pad.wav")
    # Pink noise about 30 dB below the speech, seeded for reproducibility.
    sox -R -n -r 24000 -c 1 -b 16 "$tmp/$name.noise.wav" synth "$len" pinknoise vol 0.02
    sox -m "$tmp/$name.pad.wav" "$tmp/$name.noise.wav" -b 16 "$out/$name.wav"
  else
    cp "$tmp/$name.pad.wav" "$out/$name.wav"
  fi
  opusenc --quiet --serial 1 --bitrate 32 --framesize 20 "$out/$name.wav" "$out/$name.opus"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$voice" "$wpm" "$noise" "$text" >> "$out/fixtures.tsv"
done

# Noises that must not count as speech (barge-in must ignore them):
# a 40 ms click and a 150 ms cough-like burst, each inside 1 s of silence.
sox -R -n -r 24000 -c 1 -b 16 "$tmp/click.wav" synth 0.04 whitenoise vol 0.8
sox "$tmp/click.wav" "$out/noise_click.wav" pad 0.5 0.46
sox -R -n -r 24000 -c 1 -b 16 "$tmp/cough.wav" synth 0.15 brownnoise vol 0.9 fade 0.01 0.15 0.05
sox "$tmp/cough.wav" "$out/noise_cough.wav" pad 0.5 0.35
printf 'noise_click\t-\t0\t1\t\nnoise_cough\t-\t0\t1\t\n' >> "$out/fixtures.tsv"
echo "make-testdata: wrote $(ls "$out" | wc -l) files to $out"
