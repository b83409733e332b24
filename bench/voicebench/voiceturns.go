package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"parley/agent"
	"parley/bench/internal/fakeengines"
	"parley/gateway"
	"parley/media"
	"parley/storage/seal"
	"parley/storage/sqlite"
)

// voiceTurns runs sessions concurrent voice sessions against an in-process
// gateway with zero-latency engines (package fakeengines: what remains of a
// voice turn's latency is the gateway's); each streams the fixture in real
// time, turns times over. It reports, per turn, the time from
// input_audio_buffer.speech_stopped to the first response.output_audio.delta
// as the client sees it.
func voiceTurns(dir string, sessions, turns int) error {
	f, err := os.Open(filepath.Join(dir, "what_is_parley.wav"))
	if err != nil {
		return err
	}
	pcm, rate, err := media.DecodeWAV(f)
	f.Close()
	if err != nil || rate != 24000 {
		return fmt.Errorf("fixture: %v (rate %d)", err, rate)
	}
	chunks := make([]string, 0, len(pcm)/480+1)
	for i := 0; i < len(pcm); i += 480 {
		b := media.PCM16LEToBytes(nil, pcm[i:min(i+480, len(pcm))])
		ev, _ := json.Marshal(map[string]string{"type": "input_audio_buffer.append", "audio": base64.StdEncoding.EncodeToString(b)})
		chunks = append(chunks, string(ev))
	}

	tmp, err := os.MkdirTemp("", "voicebench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	store, err := sqlite.Open(context.Background(), filepath.Join(tmp, "p.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	const key = "sk_voicebench_0123456789abcdef"
	auth, _, err := gateway.BootstrapKeys(context.Background(), store, key)
	if err != nil {
		return err
	}
	mk, err := seal.NewMasterKey("bench")
	if err != nil {
		return err
	}
	kr, err := seal.NewKeyring(store, []seal.MasterKey{mk}, seal.Options{})
	if err != nil {
		return err
	}
	gw, err := gateway.New(gateway.Options{
		Sealer: kr,
		Agents: map[string]*agent.Agent{"bench": {ID: "bench", Responder: fakeengines.Agent{}}},
		Store:  store, Auth: auth, Logger: zerolog.Nop(), Recognizer: fakeengines.Recognizer{}, Synthesizer: fakeengines.Synth{},
		MaxSessions: sessions + 10,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: gw.Handler()}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close(); _ = gw.Close() }()
	url := "ws://" + ln.Addr().String() + "/v1/realtime?model=bench"

	var mu sync.Mutex
	var lat, srvGW []time.Duration
	var errs int
	var wg sync.WaitGroup
	for i := 0; i < sessions; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(i) * time.Second / time.Duration(sessions)) // ramp over 1 s
			l, g, err := voiceSession(url, key, chunks, turns)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			lat = append(lat, l...)
			srvGW = append(srvGW, g...)
		}(i)
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sort.Slice(srvGW, func(i, j int) bool { return srvGW[i] < srvGW[j] })
	q := func(d []time.Duration, p float64) string {
		if len(d) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fms", float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds())/1000)
	}
	fmt.Printf("Voice turns: %d concurrent sessions streaming a spoken question in real time, %d turns each, zero-latency engines (SQLite storage)\n", sessions, turns)
	fmt.Printf("  speech_stopped -> first response.output_audio.delta (client-measured, all of it the gateway's): p50 %s  p99 %s  (%d turns, %d failed sessions)\n",
		q(lat, 0.5), q(lat, 0.99), len(lat), errs)
	fmt.Printf("  gateway's own figure (metadata.parley.voice.gateway_ms, where the first audio had been written): p50 %s  p99 %s  (%d turns)\n\n",
		q(srvGW, 0.5), q(srvGW, 0.99), len(srvGW))
	return nil
}

func voiceSession(url, key string, chunks []string, turns int) (lat, srvGW []time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(turns)*10*time.Second+10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
	if err != nil {
		return nil, nil, err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(16 << 20)
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"session.update","session":{"output_modalities":["audio"]}}`)); err != nil {
		return nil, nil, err
	}
	type mark struct {
		stopped, firstAudio time.Time
		gw                  float64
	}
	results := make(chan mark, turns)
	readErr := make(chan error, 1)
	go func() {
		var m mark
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			var ev struct {
				Type     string `json:"type"`
				Response struct {
					Metadata struct {
						Parley struct {
							Voice struct {
								GatewayMS float64 `json:"gateway_ms"`
							} `json:"voice"`
						} `json:"parley"`
					} `json:"metadata"`
				} `json:"response"`
			}
			if json.Unmarshal(b, &ev) != nil {
				continue
			}
			switch ev.Type {
			case "input_audio_buffer.speech_stopped":
				m = mark{stopped: time.Now()}
			case "response.output_audio.delta":
				if m.firstAudio.IsZero() {
					m.firstAudio = time.Now()
				}
			case "response.done":
				m.gw = ev.Response.Metadata.Parley.Voice.GatewayMS
				results <- m
				m = mark{}
			}
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for t := 0; t < turns; t++ {
		for _, c := range chunks {
			<-tick.C
			if err := conn.Write(ctx, websocket.MessageText, []byte(c)); err != nil {
				return nil, nil, err
			}
		}
		select {
		case m := <-results:
			if !m.stopped.IsZero() && !m.firstAudio.IsZero() {
				lat = append(lat, m.firstAudio.Sub(m.stopped))
			}
			if m.gw > 0 {
				srvGW = append(srvGW, time.Duration(m.gw*float64(time.Millisecond)))
			}
		case err := <-readErr:
			return nil, nil, err
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	return lat, srvGW, conn.Close(websocket.StatusNormalClosure, "")
}
