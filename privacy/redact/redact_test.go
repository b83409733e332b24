package redact

import (
	"strings"
	"testing"
	"unicode/utf8"
)

type redactCase struct {
	in, want string
}

func runCases(t *testing.T, k Kinds, cases []redactCase) {
	t.Helper()
	for _, c := range cases {
		if got := k.Redact(c.in); got != c.want {
			t.Errorf("Redact(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestEmails(t *testing.T) {
	runCases(t, All(), []redactCase{
		{"john.doe@example.com", "[email]"},
		{"write to jane+tag@mail.example.co.uk.", "write to [email]."},
		{"Contact: JOHN@EXAMPLE.COM.", "Contact: [email]."},
		{"(john@example.com)", "([email])"},
		{"<a_b-c%d@sub.domain.io>", "<[email]>"},
		{"a@b.co and c@d.org", "[email] and [email]"},
		{"müller@bücher.de", "[email]"},
		{"x@xn--bcher-kva.example", "[email]"},
		{"john @ example.com", "[email]"},
		{"mail: 4111111111111111@example.com", "mail: [email]"},
		// Not addresses.
		{"@handle", "@handle"},
		{"foo@bar", "foo@bar"},
		{"a@b.c", "a@b.c"},
		{"user@localhost", "user@localhost"},
		{"john@example.c0m", "john@example.c0m"},
		{"a@@b.com", "a@@b.com"},
		{"price@ 5 dollars", "price@ 5 dollars"},
	})
}

func TestSpokenEmails(t *testing.T) {
	runCases(t, All(), []redactCase{
		{"john dot doe at example dot com", "[email]"},
		{"it's John Dot Doe At Gmail Dot Com, thanks", "it's [email], thanks"},
		{"jane underscore roe at mail dot example dot co dot uk", "[email]"},
		{"j dash smith at example dot de.", "[email]."},
		{"send it to john at example.com", "send it to [email]"},
		{"email me at info at example dot com please", "email me at [email] please"},
		{"john dot doe@example.com", "[email]"},
		{"john@example dot com", "[email]"},
		{"anna at example dot com dot and so on", "[email] dot and so on"},
		// Not addresses.
		{"I work at example dot com", "I work at example dot com"},
		{"look at example dot com", "look at example dot com"},
		{"we're at example dot com", "we're at example dot com"},
		{"I'm at example dot com", "I'm at example dot com"},
		{"meet me at noon", "meet me at noon"},
		{"john at example dot banana", "john at example dot banana"},
		{"john at example", "john at example"},
		{"the cat sat at the mat dot", "the cat sat at the mat dot"},
	})
}

func TestIBANs(t *testing.T) {
	runCases(t, All(), []redactCase{
		{"DE89 3704 0044 0532 0130 00", "[iban]"},
		{"my IBAN is DE89370400440532013000.", "my IBAN is [iban]."},
		{"GB82WEST12345698765432", "[iban]"},
		{"GB82 WEST 1234 5698 7654 32", "[iban]"},
		{"gb82 west 1234 5698 7654 32", "[iban]"},
		{"FR14 2004 1010 0505 0001 3M02 606", "[iban]"},
		{"NL91ABNA0417164300", "[iban]"},
		{"BE68 5390 0754 7034 from my bank", "[iban] from my bank"},
		{"NO93 8601 1117 947", "[iban]"},
		{"CH93 0076 2011 6238 5295 7", "[iban]"},
		{"DE89 3704 0044 0532 0130 00 Euro", "[iban] Euro"},
		{"DE89 37040044 0532013000", "[iban]"},
		{"(DE89370400440532013000)", "([iban])"},
		// Invalid check digits, lengths or boundaries: not IBANs (and the
		// digits glued to letters are no phone either).
		{"DE88 3704 0044 0532 0130 00", "DE88 3704 0044 0532 0130 00"},
		{"GB82WEST12345698765433", "GB82WEST12345698765433"},
		{"GB83WEST12345698765432", "GB83WEST12345698765432"},
		{"DE89 3704 0044 0532 0130 0", "DE89 3704 0044 0532 0130 0"},
		{"DE89370400440532013000X", "DE89370400440532013000X"},
		{"XDE89370400440532013000", "XDE89370400440532013000"},
		{"DE00370400440532013000", "DE00370400440532013000"},
	})
}

func TestCards(t *testing.T) {
	runCases(t, All(), []redactCase{
		{"4111 1111 1111 1111", "[card]"},
		{"card: 4111-1111-1111-1111.", "card: [card]."},
		{"4111111111111111", "[card]"},
		{"5500-0000-0000-0004", "[card]"},
		{"5555 5555 5555 4444", "[card]"},
		{"3782 822463 10005", "[card]"},       // Amex, 15 digits
		{"6011111111111117", "[card]"},        // Discover
		{"4222222222222", "[card]"},           // Visa, 13 digits
		{"6304 0000 0000 0000 018", "[card]"}, // Maestro, 19 digits
		{"4111 1111 1111 1111 12/26", "[card] 12/26"},
		{"ref 12 4111 1111 1111 1111", "ref 12 [card]"},
		{"4111111111111111 and 5500000000000004", "[card] and [card]"},
		// Failing Luhn or shape: no card; 16+ digits are no phone either.
		{"4111 1111 1111 1112", "4111 1111 1111 1112"},
		{"5500-0000-0000-0005", "5500-0000-0000-0005"},
		{"0000 0000 0000 0000", "0000 0000 0000 0000"},
		{"ID4111111111111111", "ID4111111111111111"},
		{"4111111111111111x", "4111111111111111x"},
		{"41111111111111111111111", "41111111111111111111111"},
		// 13-15 digits failing Luhn are a phone number.
		{"4111 1111 1111 112", "[phone]"},
	})
}

func TestPhones(t *testing.T) {
	runCases(t, All(), []redactCase{
		{"+49 30 1234567", "[phone]"},
		{"call +1 (555) 123-4567 now", "call [phone] now"},
		{"(555) 123-4567", "[phone]"},
		{"555-123-4567", "[phone]"},
		{"555.123.4567", "[phone]"},
		{"555 - 123 - 4567", "[phone]"},
		{"+44 (0)20 7946 0958", "[phone]"},
		{"030 1234567", "[phone]"},
		{"030/1234567", "030/1234567"}, // "/" is no separator
		{"0301234567", "[phone]"},
		{"+4930123456", "[phone]"},
		{"01 23 45 67 89", "[phone]"},
		{"01.23.45.67.89", "[phone]"},
		{"06-12345678", "[phone]"},
		{"612 345 678", "[phone]"},
		{"+33 1 23 45 67 89", "[phone]"},
		{"555 1234", "[phone]"},
		{"Call 07911 123456.", "Call [phone]."},
		{"call (030 1234567)", "call ([phone])"},
		{"tel:+41446681800", "tel:[phone]"},
		{"order 12345678", "order [phone]"},
		{"+1 555 123 4567 or 555-987-6543", "[phone] or [phone]"},
		// Ordinary numbers.
		{"2026", "2026"},
		{"in 2026 we", "in 2026 we"},
		{"$1,299.99", "$1,299.99"},
		{"1,299,999.99 dollars", "1,299,999.99 dollars"},
		{"10:30", "10:30"},
		{"at 10:30:15", "at 10:30:15"},
		{"3 items", "3 items"},
		{"12345", "12345"},
		{"123456", "123456"},
		{"12.05.2026", "12.05.2026"},
		{"2026-05-12", "2026-05-12"},
		{"12/05/2026", "12/05/2026"},
		{"12 05 2026", "12 05 2026"},
		{"192.168.100.200", "192.168.100.200"},
		{"1.000.000", "1.000.000"},
		{"1 000 000", "1 000 000"},
		{"3.14159265", "3.14159265"},
		{"1234567,50", "1234567,50"},
		{"between 2019 2020", "between 2019 2020"},
		{"1000000", "1000000"},
		{"$1299999", "$1299999"},
		{"$ 1299999", "$ 1299999"},
		{"1299999 €", "1299999 €"},
		{"€1299999", "€1299999"},
		{"£1299999", "£1299999"},
		{"2500000%", "2500000%"},
		{"v1.2.3", "v1.2.3"},
		{"abc1234567", "abc1234567"},
		{"1234567th", "1234567th"},
		{"1234567890123456", "1234567890123456"}, // 16 digits
		{"+12345", "+12345"},
	})
}

func TestMixed(t *testing.T) {
	in := "Card 4111 1111 1111 1111, phone +49 30 1234567, mail a@b.com, iban DE89 3704 0044 0532 0130 00."
	runCases(t, All(), []redactCase{
		{in, "Card [card], phone [phone], mail [email], iban [iban]."},
		{"4111 1111 1111 1111 555 1234", "[card] [phone]"},
	})
	runCases(t, Kinds{Phones: true}, []redactCase{
		// A card is never reported as a phone, even with Cards off.
		{in, "Card 4111 1111 1111 1111, phone [phone], mail a@b.com, iban DE89 3704 0044 0532 0130 00."},
		{"4222222222222", "4222222222222"},
	})
	runCases(t, Kinds{Emails: true, IBANs: true}, []redactCase{
		{in, "Card 4111 1111 1111 1111, phone +49 30 1234567, mail [email], iban [iban]."},
	})
	runCases(t, Kinds{}, []redactCase{{in, in}})

	got := All().Find(in)
	want := []Match{{KindCard, 5, 24}, {KindPhone, 32, 46}, {KindEmail, 53, 60}, {KindIBAN, 67, 94}}
	if len(got) != len(want) {
		t.Fatalf("Find = %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("Find[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if c := All().Count(in + " b@c.de"); c != (Counts{Emails: 2, Phones: 1, Cards: 1, IBANs: 1}) {
		t.Errorf("Count = %+v", c)
	}
	if c := (Kinds{Cards: true}).Count(in); c != (Counts{Cards: 1}) {
		t.Errorf("Count(cards) = %+v", c)
	}
	if All().Find("nothing here") != nil {
		t.Error("Find found something in plain text")
	}
}

func TestManyMatches(t *testing.T) {
	// More matches than the on-stack buffer holds, found stage by stage.
	var b, w strings.Builder
	for i := 0; i < 20; i++ {
		b.WriteString("a@b.com 4111111111111111 +49 30 1234567 GB82WEST12345698765432 ")
		w.WriteString("[email] [card] [phone] [iban] ")
	}
	if got := All().Redact(b.String()); got != w.String() {
		t.Errorf("Redact = %q", got)
	}
	if n := len(All().Find(b.String())); n != 80 {
		t.Errorf("Find found %d, want 80", n)
	}
}

const plainTurn = "Hi, I'd like to change my booking for next Tuesday, please. We are 3 people " +
	"and would arrive around 10:30 in the morning. The total was $1,299.99 last year in 2025, " +
	"is that still right? Thanks a lot!"

func TestNoAllocWhenClean(t *testing.T) {
	if got := All().Redact(plainTurn); got != plainTurn {
		t.Fatalf("Redact changed a clean text: %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { All().Redact(plainTurn) }); n != 0 {
		t.Errorf("Redact of a clean text allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { All().Find(plainTurn) }); n != 0 {
		t.Errorf("Find of a clean text allocates %v times", n)
	}
}

func BenchmarkRedactClean(b *testing.B) {
	k := All()
	b.SetBytes(int64(len(plainTurn)))
	b.ReportAllocs()
	for b.Loop() {
		k.Redact(plainTurn)
	}
}

// BenchmarkRedactCleanNumbers is a clean text whose numbers make every
// stage run.
func BenchmarkRedactCleanNumbers(b *testing.B) {
	s := "On 12.05.2026 at 10:30 we shipped 1.000.000 units, order 4111 1111 1111 1112, to " +
		"192.168.100.200 for $1,299,999.99 (3 items); ref AB12 3456 7890 1234 5678 and 2019 2020 2021."
	if got := All().Redact(s); got != s {
		b.Fatalf("Redact changed a clean text: %q", got)
	}
	k := All()
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		k.Redact(s)
	}
}

func BenchmarkRedactDirty(b *testing.B) {
	s := "Sure, my card is 4111 1111 1111 1111 and you can call me on +49 30 1234567 " +
		"or mail john.doe@example.com; the refund goes to DE89 3704 0044 0532 0130 00. Thanks!"
	k := All()
	b.SetBytes(int64(len(s)))
	b.ReportAllocs()
	for b.Loop() {
		k.Redact(s)
	}
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		plainTurn, "", "a@b.co", "john dot doe at example dot com", "DE89 3704 0044 0532 0130 00",
		"4111 1111 1111 1111 12/26", "+44 (0)20 7946 0958", "(555) 123-4567", "call (030 1234567)",
		"4111111111111111.5551234", "a@b.co dot doe at example dot com", "5551234 ,5551234",
		"x@xn--bcher-kva.example", "müller@bücher.de", "12.05.2026 1.000.000 $ 1299999 €",
		"gb82 west 1234 5698 7654 32 4222222222222 +4930123456", "\xff@\xfe.com 4111\xff",
		"five five five, one two three, four five six seven", "plus four four double oh 555 one two 3",
		"card four one one one one one one one one one one one one one one one", "o one two three 4567.8",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := All()
		ms := k.Find(s)
		out := k.Redact(s)

		// Matches are in order, disjoint, within s and on rune starts.
		last := 0
		for _, m := range ms {
			if m.Start < last || m.End <= m.Start || m.End > len(s) {
				t.Fatalf("bad match %v (previous end %d) in %q", m, last, s)
			}
			if utf8.ValidString(s) && (!utf8.RuneStart(s[m.Start]) || m.End < len(s) && !utf8.RuneStart(s[m.End])) {
				t.Fatalf("match %v splits a rune in %q", m, s)
			}
			last = m.End
		}
		if len(ms) == 0 && out != s {
			t.Fatalf("no match but Redact(%q) = %q", s, out)
		}

		// The text of a match is gone, unless it also stands in text left
		// unmatched (where it is not personal data by the rules).
		var rest strings.Builder
		last = 0
		for _, m := range ms {
			rest.WriteString(s[last:m.Start])
			rest.WriteByte(0)
			last = m.End
		}
		rest.WriteString(s[last:])
		for _, m := range ms {
			text := s[m.Start:m.End]
			if strings.Contains(out, text) && !strings.Contains(rest.String(), text) {
				t.Fatalf("Redact(%q) = %q still holds %s %q", s, out, m.Kind, text)
			}
		}

		// Idempotent.
		if again := k.Redact(out); again != out {
			t.Fatalf("Redact not idempotent on %q:\n once  %q\n twice %q", s, out, again)
		}
		// Valid UTF-8 stays valid.
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("Redact(%q) = %q is not valid UTF-8", s, out)
		}
		// A subset of kinds replaces a subset of the matches.
		for _, sub := range []Kinds{{Emails: true}, {Phones: true}, {Cards: true}, {IBANs: true}} {
			n := 0
			for _, m := range ms {
				if sub.enabled(m.Kind) {
					n++
				}
			}
			if got := len(sub.Find(s)); got != n {
				t.Fatalf("%+v found %d in %q, want %d", sub, got, s, n)
			}
		}
	})
}

func TestSpokenDigits(t *testing.T) {
	runCases(t, All(), []redactCase{
		// The review examples.
		{"my phone is five five five one two three four five six seven", "my phone is [phone]"},
		{"card four one one one one one one one one one one one one one one one", "card [card]"},
		{"five five five, one two three, four five six seven", "[phone]"},
		{"double five five one two three four five six seven", "[phone]"},
		// Case, hyphens, commas, "double"/"triple", "oh"/"o"/"zero".
		{"Five Five Five One Two Three Four.", "[phone]."},
		{"FIVE-FIVE-FIVE-ONE-TWO-THREE-FOUR", "[phone]"},
		{"call oh two oh seven nine four six oh nine five eight now", "call [phone] now"},
		{"it's zero one seven o four, triple two, double eight five.", "it's [phone]."},
		{"plus four four two oh seven nine four six oh nine five eight", "[phone]"},
		{"call plus one five five five one two three four five six seven!", "call [phone]!"},
		{"(five five five one two three four)", "([phone])"},
		// Mixed with digit groups.
		{"555 one two three 4567", "[phone]"},
		{"it is 030 one two three four five six seven", "it is [phone]"},
		{"number 4111 one one one one one one one one one one one one", "number [card]"},
		// 13-15 digits failing Luhn are a phone; 16+ failing Luhn nothing.
		{"four one one one one one one one one one one one two", "[phone]"},
		{"four one one one one one one one one one one one one one one two", "four one one one one one one one one one one one one one one two"},
		// Other kinds around.
		{"five five five one two three four and john at example dot com", "[phone] and [email]"},
		{"4111 1111 1111 1111 and five five five one two three four", "[card] and [phone]"},
		{"five five five one two three four, 555-123-4567", "[phone], [phone]"},
	})
	runCases(t, All(), []redactCase{
		// Ordinary speech.
		{"one or two things", "one or two things"},
		{"I have three kids and two dogs", "I have three kids and two dogs"},
		{"call me at nine", "call me at nine"},
		{"number one priority", "number one priority"},
		{"twenty twenty six", "twenty twenty six"},
		{"five o'clock, six o'clock, seven o'clock", "five o'clock, six o'clock, seven o'clock"},
		{"one two three four five six", "one two three four five six"}, // 6 digits
		{"one, two, three and four five six seven", "one, two, three and four five six seven"},
		{"Oh, one two three four five six", "Oh, one two three four five six"},
		{"o one two three four five six", "o one two three four five six"},
		{"it costs one hundred and twenty five dollars", "it costs one hundred and twenty five dollars"},
		{"nine to five, seven days a week, one on one", "nine to five, seven days a week, one on one"},
		{"someone two three four five six seven", "someone two three four five six seven"}, // 6 digits
		{"one two three four five six seventeen", "one two three four five six seventeen"},
		{"one  two three four five six seven", "one  two three four five six seven"}, // two spaces
		{"double trouble, triple threat", "double trouble, triple threat"},
		// Digit groups need two digit words beside them ...
		{"between 2019 2020 one", "between 2019 2020 one"},
		{"12 05 2026 one", "12 05 2026 one"},
		// ... and stay out when the digit scanners judged their number.
		{"$1234567 one two three", "$1234567 one two three"},
		{"1.000.000 one two three four", "1.000.000 one two three four"},
		{"12.05.2026 one two", "12.05.2026 one two"},
		// 20 digits: too long for a card or a phone.
		{"one two three four five six seven eight nine zero one two three four five six seven eight nine zero",
			"one two three four five six seven eight nine zero one two three four five six seven eight nine zero"},
	})
	// A spoken card is never a phone, even with Cards off.
	card := "four one one one one one one one one one one one one one one one"
	runCases(t, Kinds{Phones: true}, []redactCase{{card, card}, {"five five five one two three four", "[phone]"}})
	runCases(t, Kinds{Cards: true}, []redactCase{{card, "[card]"}})
	if c := All().Count(card + " and five five five one two three four"); c != (Counts{Cards: 1, Phones: 1}) {
		t.Errorf("Count = %+v", c)
	}
}

func TestSpokenIdempotent(t *testing.T) {
	for _, s := range []string{
		"1234567,555 one two three four",
		"1234567(555 one two three four",
		"$1234567 555 one two three four",
		"\"123456789012 5551 one two three four",
		"one two three 4567 - 1234567890123",
		"4111111111111111 555 one two three four",
		"one two three four five six seven-5551234",
		"one two three four five six o at example dot com",
		"one two three four five six seven eight at example dot com",
	} {
		once := All().Redact(s)
		if twice := All().Redact(once); twice != once {
			t.Errorf("Redact(%q) = %q, again %q", s, once, twice)
		}
	}
}
