package textmeta

import (
	"math"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/jonreiter/govader"
)

func TestLanguage(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"I need to cancel my subscription. Please send me the invoice by email.", "en"},
		{"The train was late again this morning, so I missed the meeting.", "en"},
		{"Ich möchte meine Buchung auf nächsten Dienstag verschieben.", "de"},
		{"Mein Paket ist noch nicht angekommen. Danke, das war wirklich hilfreich.", "de"},
		{"Je voudrais déplacer ma réservation à mardi prochain.", "fr"},
		{"Le train était encore en retard ce matin. Envoyez-moi la facture, s'il vous plaît.", "fr"},
		{"¿Puede decirme cuándo abre la tienda mañana? Necesito cancelar mi suscripción.", "es"},
		{"Vorrei spostare la mia prenotazione a martedì prossimo.", "it"},
		{"Chciałbym przełożyć moją rezerwację na przyszły wtorek.", "pl"},
		{"我想把我的预订改到下周二，谢谢。", "zh"},
		{"[email] I need to cancel my subscription. Please send me the invoice.", "en"},
		// Too short or uncertain.
		{"", ""},
		{"   ", ""},
		{"yes", ""},
		{"ok thanks", ""},
		{"sí", ""},
		{"Merci", ""},
		{"Ja, genau.", ""},
		{"12345 67890 !!!", ""},
		{"[email] [phone] [card] [iban]", ""},
		{"Hola, ok, sí, yes, ja, oui, bien, good, gut.", ""},
	} {
		if got := Language(c.text); got != c.want {
			t.Errorf("Language(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

func TestISO6391Table(t *testing.T) {
	codes := iso6391()
	seen := map[string]bool{}
	for l, code := range codes {
		if code == "" {
			continue
		}
		if len(code) != 2 || seen[code] {
			t.Errorf("language %d has code %q (duplicate: %v)", l, code, seen[code])
		}
		seen[code] = true
	}
	if len(seen) < 78 {
		t.Errorf("only %d ISO 639-1 codes", len(seen))
	}
}

func TestSentiment(t *testing.T) {
	for _, c := range []struct {
		text string
		sign int
	}{
		{"This is great, thank you so much!", 1},
		{"I love this service, it works perfectly.", 1},
		{"Wonderful, that's exactly what I needed :)", 1},
		{"This is terrible, I hate it.", -1},
		{"I am not happy with the service.", -1},
		{"The delivery was late and the product is broken. Awful!", -1},
		{"I live in Berlin and work as a teacher.", 0},
		{"The invoice was sent on Monday.", 0},
		{"The meeting is at 10 on Tuesday.", 0},
		{"", 0},
		{"   ", 0},
	} {
		got := Sentiment(c.text)
		if got < -1 || got > 1 {
			t.Errorf("Sentiment(%q) = %v, out of [-1, 1]", c.text, got)
		}
		sign := 0
		switch {
		case got > 0.05:
			sign = 1
		case got < -0.05:
			sign = -1
		}
		if sign != c.sign {
			t.Errorf("Sentiment(%q) = %v, want sign %d", c.text, got, c.sign)
		}
	}
}

func TestSentimentConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if Sentiment("This is great!") <= 0 {
					t.Error("not positive")
				}
			}
		}()
	}
	wg.Wait()
}

func TestAggregate(t *testing.T) {
	var a Aggregate
	if a.Language() != "" || a.Sentiment() != 0 || a.Turns() != 0 {
		t.Fatalf("zero Aggregate: %q %v %d", a.Language(), a.Sentiment(), a.Turns())
	}
	a.Add("   ") // blank: ignored
	if a.Turns() != 0 {
		t.Fatal("a blank turn counted")
	}
	a.Add("Hallo, ich möchte einen Termin verschieben.")
	a.Add("Das ist wirklich sehr schlecht.")
	a.Add("Ja, genau, am Dienstag um zehn Uhr passt es mir gut.")
	if got := a.Language(); got != "de" {
		t.Errorf("Language = %q, want de", got)
	}
	if a.Turns() != 3 {
		t.Errorf("Turns = %d", a.Turns())
	}

	var b Aggregate
	b.Add("This is great, thank you so much!")
	b.Add("This is terrible, I hate it.")
	b.Add("The meeting is at 10.")
	want := (Sentiment("This is great, thank you so much!") + Sentiment("This is terrible, I hate it.")) / 3
	if got := b.Sentiment(); math.Abs(got-want) > 1e-12 {
		t.Errorf("Sentiment = %v, want the mean %v", got, want)
	}
	if got := b.Language(); got != "en" {
		t.Errorf("Language = %q, want en", got)
	}
	// Language is cached and recomputed after Add.
	b.Add("Das ist wirklich sehr schlecht, ich möchte mein Abonnement kündigen und den Vertrag beenden. " +
		"Mein Paket ist noch nicht angekommen, und niemand hat mir geantwortet. Ich bin wirklich enttäuscht.")
	if got := b.Language(); got != "de" {
		t.Errorf("Language after a long German turn = %q, want de", got)
	}

	var c Aggregate
	c.AddScored("I love it", 0.5)
	c.AddScored("meh", -0.1)
	c.AddScored("broken", math.NaN())
	c.AddScored("huge", 7)
	if got, want := c.Sentiment(), (0.5-0.1+0+1)/4; math.Abs(got-want) > 1e-12 {
		t.Errorf("Sentiment = %v, want %v", got, want)
	}

	// The kept text is capped.
	var d Aggregate
	turn := strings.Repeat("Ich möchte meine Buchung verschieben. ", 10)
	for i := 0; i < 100; i++ {
		d.Add(turn)
	}
	if len(d.text) > MaxLanguageBytes || !utf8.Valid(d.text) {
		t.Errorf("kept %d bytes (valid UTF-8: %v)", len(d.text), utf8.Valid(d.text))
	}
	if d.Turns() != 100 || d.Language() != "de" {
		t.Errorf("Turns = %d, Language = %q", d.Turns(), d.Language())
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 2, "ab"},
		{"aé", 2, "a"},
		{"a€b", 3, "a"},
		{"a€b", 4, "a€"},
		{"€", 0, ""},
		{"a\x80\x80\x80\x80", 4, "a\x80\x80\x80"}, // not UTF-8: cut as is
		{"\x80\x80\x80\x80\x80", 4, "\x80\x80\x80\x80"},
	} {
		if got := truncate(c.s, c.n); got != c.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

func TestStripPlaceholders(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"no brackets", "no brackets"},
		{"mail [email] now", "mail  now"},
		{"[phone][card]", ""},
		{"[Email] [x1] [] [abcdefghijk] [", "[Email] [x1] [] [abcdefghijk] ["},
		{"a[iban]", "a"},
	} {
		if got := stripPlaceholders(c.in); got != c.want {
			t.Errorf("stripPlaceholders(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// turn200 is a typical 200-byte user turn.
const turn200 = "Hi, I'd like to change my booking for next Tuesday, please. We are three people " +
	"and would arrive around half past ten in the morning. The total was quite expensive " +
	"last year, is that still right?"

func BenchmarkLanguage(b *testing.B) {
	Language(turn200)
	b.SetBytes(int64(len(turn200)))
	b.ReportAllocs()
	for b.Loop() {
		Language(turn200)
	}
}

// BenchmarkLanguage4K is Aggregate.Language's worst case: a full
// MaxLanguageBytes of text.
func BenchmarkLanguage4K(b *testing.B) {
	text := truncate(strings.Repeat(turn200+" ", MaxLanguageBytes/len(turn200)+1), MaxLanguageBytes)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		Language(text)
	}
}

func BenchmarkSentiment(b *testing.B) {
	Sentiment(turn200)
	b.SetBytes(int64(len(turn200)))
	b.ReportAllocs()
	for b.Loop() {
		Sentiment(turn200)
	}
}

func BenchmarkAggregateAdd(b *testing.B) {
	Sentiment(turn200)
	b.SetBytes(int64(len(turn200)))
	b.ReportAllocs()
	for b.Loop() {
		var a Aggregate
		a.Add(turn200)
	}
}

// BenchmarkAnalyzerBuild is the one-time cost of loading VADER's lexicon.
func BenchmarkAnalyzerBuild(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		govader.NewSentimentIntensityAnalyzer()
	}
}

func FuzzLanguage(f *testing.F) {
	for _, s := range []string{"", "yes", turn200, "Ich möchte meine Buchung verschieben.", "我想把我的预订改到下周二", "\xff\xfe", "[email]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Language(s)
		if got != "" && (len(got) != 2 || got[0] < 'a' || got[0] > 'z' || got[1] < 'a' || got[1] > 'z') {
			t.Fatalf("Language(%q) = %q", s, got)
		}
		var a Aggregate
		a.Add(s)
		a.Add(s)
		if len(a.text) > MaxLanguageBytes {
			t.Fatalf("Aggregate kept %d bytes", len(a.text))
		}
		if l := a.Language(); l != "" && len(l) != 2 {
			t.Fatalf("Aggregate.Language = %q", l)
		}
	})
}

func FuzzSentiment(f *testing.F) {
	for _, s := range []string{"", "great", "not bad at all", "NO!!! never :(", "but but but", "kind of", "least", "😀😡", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Sentiment(s)
		if math.IsNaN(got) || got < -1 || got > 1 {
			t.Fatalf("Sentiment(%q) = %v", s, got)
		}
		var a Aggregate
		a.Add(s)
		a.Add("fine")
		if m := a.Sentiment(); math.IsNaN(m) || m < -1 || m > 1 {
			t.Fatalf("Aggregate.Sentiment = %v", m)
		}
	})
}
