// Package redact replaces personal data in transcript text with
// placeholders before the text is stored: e-mail addresses ("[email]"),
// phone numbers ("[phone]"), payment card numbers ("[card]") and IBANs
// ("[iban]").
//
// It is a set of hand-written byte scanners (no regexp), pure and safe
// for concurrent use. A 200-byte text with nothing to redact costs under
// a microsecond (a few microseconds when it holds long numbers every
// stage must look at) and allocates nothing; Redact then returns its
// argument itself.
//
// # Detection
//
// Detection runs in a fixed order, each stage seeing only the text the
// earlier ones left unclaimed: e-mails, IBANs, cards, phones, spoken
// digits (see below). So a card
// number is never reported as a phone number, and the digits of an IBAN
// never as a card. All stages always run; Kinds only selects which
// matches are replaced (a card number is left alone, not redacted as a
// phone, when Cards is off and Phones on).
//
// Boundaries are ASCII: a match never starts or ends inside a run of
// ASCII letters and digits ("ID4111111111111111" is not a card).
//
// E-mails: local@domain.tld with the local part of letters, digits and
// "._%+-" (and non-ASCII letters), a domain of at least two labels and a
// top-level label of at least two ASCII letters (or "xn--…"). Spoken forms
// as a speech-to-text engine writes them are recognised too: "john dot doe
// at example dot com", "jane underscore roe at mail dot example dot co dot
// uk", "john at example.com", "john @ example.com". A spoken form must end
// in a common top-level domain (com, org, net, de, fr, co.uk, ...; see
// spokenTLDs), and a one-word local part before a spoken "at" must be two
// or more characters and not an everyday word or the tail of a
// contraction ("I work at example dot com", "we're at example dot com" are
// left alone; see stopWords).
//
// IBANs: two letters, two check digits (02-98) and up to 30 letters and
// digits, written as one word or as words separated by single spaces
// (normally groups of four: "DE89 3704 0044 0532 0130 00"); lower case is
// accepted. The rearranged number must pass the ISO 13616 mod-97 check,
// and its length must be the registered length for a known country
// (15-34 for an unknown country code). The longest valid prefix of the
// words wins, so a word after the IBAN is not eaten.
//
// Cards: 13-19 digits, not starting with 0, written contiguously or in
// groups separated by single spaces or dashes, that pass the Luhn check.
// Within a longer run of digit groups, the leftmost and then longest
// Luhn-valid span of whole groups is taken ("4111 1111 1111 1111 12/26"
// redacts the card and keeps the expiry). A contiguous run of more than 19
// digits is never cut into a card.
//
// Phones — the rule: a phone number is a run of digit groups, optionally
// led by "+" (international) or "(", whose groups are separated by one of
// " ", "-", ".", " - " or parentheses ("(555) 123-4567", "+44 (0)20 7946
// 0958"), holding 7 to 15 digits in all (E.164 allows 15), that
//   - does not touch letters or digits on either side, is not led by
//     "<digit>." / "<digit>," / "<digit>:" / "<digit>/" / "<digit>-" and
//     is not followed by [.,:/-] and another number (so no part of
//     "1,299.99", "10:30", "12/05/2026" or "1234567,50" is taken);
//   - is not next to a currency sign or a percent sign ("$ 1299999",
//     "1000000 €", "2500000%");
//
// and, unless it starts with "+", is also not
//   - a date: three groups with the same separator shaped d{1,2} d{1,2}
//     d{2}|d{4} or d{4} d{1,2} d{1,2} ("12.05.2026", "2026-05-12");
//   - a decimal: exactly one "." separator ("3.14159265");
//   - an IPv4 address: four dot-separated groups of 1-3 digits;
//   - a number with thousands separators: same separator "." or " ", a
//     first group of 1-3 digits (1-2 for spaces) not starting with 0, and
//     all other groups of exactly 3 digits ("1.000.000", "1 000 000"; but
//     "612 345 678" stays a phone);
//   - a list of years: groups of 4 digits each in 1900-2099 ("2019 2020");
//   - a round number: one group not starting with 0 and ending in 000
//     ("1000000").
//
// Everything else with 7-15 digits is a phone number: the rule leans to
// privacy, so a long bare number such as an order number ("order
// 12345678") is redacted too, while years ("2026"), prices ("$1,299.99"),
// times ("10:30"), quantities ("3 items") and other numbers of fewer than 7
// digits never are. A number of 16+ digits that is not a valid card is left
// alone; one of 13-15 digits that fails the Luhn check is a phone number.
//
// Spoken digits: speech recognisers write numbers read out digit by digit
// as words ("five five five one two three four five six seven"). A run of
// such tokens is one number: the digit words zero, oh, o, one ... nine
// (any case), "double X" and "triple X" (X a digit word: two or three
// digits), and groups of ASCII digits ("555 one two three 4567"); tokens
// are separated by a single space, a hyphen or ", ", and a run may be led
// by "plus". Tokens are whole words: "o'clock" or "someone" hold none.
// "o" never starts a run, nor does "oh" before a comma ("Oh, one two
// ..."). A run needs at least two digits written as words (digits alone
// are the digit stages' business), and then, as for digits, 13-19 digits
// not starting with 0 that pass the Luhn check are a card (never when led
// by "plus"), 7-15 digits are a phone, and anything else is left alone,
// including runs of 16+ digits that fail the Luhn check. The whole run is
// replaced. Tens and other number words ("twenty", "hundred") are no digit
// words, and "and", "or", "to" or two spaces end a run, so ordinary speech
// ("one or two things", "twenty twenty six") is left alone; but counting
// aloud to seven is taken for a phone number. A digit group a digit stage
// has already judged (one that touches another number through " -.,:/()+",
// or a currency sign) neither starts nor ends a run; so a number the phone
// stage has taken is not extended by the words next to it ("555-1234 five
// six seven" leaves "five six seven"), and a card is not cut out of a
// longer spoken run.
package redact

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kinds selects the kinds of personal data Redact replaces.
type Kinds struct {
	Emails, Phones, Cards, IBANs bool
}

// All returns Kinds with every kind enabled.
func All() Kinds { return Kinds{Emails: true, Phones: true, Cards: true, IBANs: true} }

// Kind names, as in Match.Kind; the placeholder of a kind is "[" + kind + "]".
const (
	KindEmail = "email"
	KindPhone = "phone"
	KindCard  = "card"
	KindIBAN  = "iban"
)

// Match is one piece of personal data found in a text: s[Start:End] is of
// kind Kind (KindEmail, KindPhone, KindCard or KindIBAN).
type Match struct {
	Kind       string
	Start, End int
}

// Counts says how many pieces of each kind Redact would replace.
type Counts struct {
	Emails, Phones, Cards, IBANs int
}

func (k Kinds) any() bool { return k.Emails || k.Phones || k.Cards || k.IBANs }

func (k Kinds) enabled(kind string) bool {
	switch kind {
	case KindEmail:
		return k.Emails
	case KindPhone:
		return k.Phones
	case KindCard:
		return k.Cards
	case KindIBAN:
		return k.IBANs
	}
	return false
}

// Redact returns s with each enabled kind of personal data replaced by
// its placeholder: "[email]", "[phone]", "[card]", "[iban]". It returns s
// itself, without allocating, when nothing matched.
func (k Kinds) Redact(s string) string {
	if !k.any() {
		return s
	}
	var buf [8]Match
	ms := k.find(s, buf[:0])
	if len(ms) == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, m := range ms {
		b.WriteString(s[last:m.Start])
		b.WriteByte('[')
		b.WriteString(m.Kind)
		b.WriteByte(']')
		last = m.End
	}
	b.WriteString(s[last:])
	return b.String()
}

// Find returns the pieces of personal data of the enabled kinds in s, in
// order and not overlapping, or nil.
func (k Kinds) Find(s string) []Match {
	if !k.any() {
		return nil
	}
	var buf [8]Match
	ms := k.find(s, buf[:0])
	if len(ms) == 0 {
		return nil
	}
	return append([]Match(nil), ms...)
}

// Count returns how many pieces of each enabled kind Redact would replace.
func (k Kinds) Count(s string) Counts {
	var c Counts
	if !k.any() {
		return c
	}
	var buf [8]Match
	for _, m := range k.find(s, buf[:0]) {
		switch m.Kind {
		case KindEmail:
			c.Emails++
		case KindPhone:
			c.Phones++
		case KindCard:
			c.Cards++
		case KindIBAN:
			c.IBANs++
		}
	}
	return c
}

// find appends the matches of the enabled kinds in s to ms, sorted.
func (k Kinds) find(s string, ms []Match) []Match {
	base := len(ms)
	email, iban, number, spoken := survey(s)
	if email {
		ms = scanEmails(view{s, 0, len(s)}, ms)
	}
	if iban {
		ms = stage(s, ms, base, stageIBAN)
	}
	if number {
		ms = stage(s, ms, base, stageCard)
		ms = stage(s, ms, base, stagePhone)
	}
	if spoken {
		ms = stage(s, ms, base, stageSpoken)
	}
	if k == All() {
		return ms
	}
	out := ms[:base]
	for _, m := range ms[base:] {
		if k.enabled(m.Kind) {
			out = append(out, m)
		}
	}
	return out
}

// survey is a quick pass over s that rules stages out: email is false
// when s has no "@" or " at ", iban when no word starts with two letters
// and two digits, number when no run of digits joined by up to three of
// " -.()+" holds 7 digits, spoken when s has no spoken digit word.
func survey(s string) (email, iban, number, spoken bool) {
	digits, gap := 0, 0
	var prev uint8 // class of s[i-1]
	for i := 0; i < len(s); i++ {
		c := s[i]
		f := byteClass[c]
		pf := prev
		prev = f
		switch {
		case f&clDigit != 0:
			if digits++; digits >= 7 {
				number = true
			}
			gap = 0
			continue
		case f&clAlpha != 0:
			digits, gap = 0, 0
			if pf&(clDigit|clAlpha) != 0 {
				continue // inside a word
			}
			if i+3 < len(s) && isAlpha(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
				iban = true
			}
			if !spoken && pf&clWord == 0 && maybeDigitWord(s, i) {
				n, _ := digitWord(view{s, 0, len(s)}, i)
				spoken = n > 0
			}
			continue
		case c == '@':
			email = true
		case c == ' ':
			if i+3 < len(s) && s[i+1]|0x20 == 'a' && s[i+2]|0x20 == 't' && s[i+3] == ' ' {
				email = true
			}
		}
		if f&clGap != 0 {
			if gap++; gap <= 3 {
				continue
			}
		}
		digits, gap = 0, 0
	}
	return email, iban, number, spoken
}

// Byte classes for survey.
const (
	clDigit = 1 << iota // 0-9
	clAlpha             // A-Z, a-z
	clWord              // isWordByte
	clGap               // " -.()+", joining digit groups
)

var byteClass [256]uint8

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		var f uint8
		if isDigit(b) {
			f |= clDigit
		}
		if isAlpha(b) {
			f |= clAlpha
		}
		if isWordByte(b) {
			f |= clWord
		}
		if b == ' ' || b == '-' || b == '.' || b == '(' || b == ')' || b == '+' {
			f |= clGap
		}
		byteClass[c] = f
	}
}

const (
	stageIBAN = iota
	stageCard
	stagePhone
	stageSpoken
)

// stage runs one scanner over each stretch of s between the matches
// ms[base:] found so far, then sorts ms[base:] again.
func stage(s string, ms []Match, base, which int) []Match {
	n0 := len(ms)
	lo := 0
	for i := base; i <= n0; i++ {
		hi := len(s)
		if i < n0 {
			hi = ms[i].Start
		}
		if hi > lo {
			v := view{s, lo, hi}
			switch which {
			case stageIBAN:
				ms = scanIBANs(v, ms)
			case stageCard:
				ms = scanCards(v, ms)
			case stagePhone:
				ms = scanPhones(v, ms)
			default:
				ms = scanSpoken(v, ms)
			}
		}
		if i < n0 {
			lo = ms[i].End
		}
	}
	if len(ms) > n0 && n0 > base {
		// Insertion sort: both halves are sorted and short.
		for i := n0; i < len(ms); i++ {
			for j := i; j > base && ms[j].Start < ms[j-1].Start; j-- {
				ms[j], ms[j-1] = ms[j-1], ms[j]
			}
		}
	}
	return ms
}

// view is the stretch s[lo:hi] a scanner may match in. Bytes outside it
// read as 0, a byte no rule gives a meaning, the way a placeholder's
// brackets read once the text is redacted: so a second Redact finds
// nothing new.
type view struct {
	s      string
	lo, hi int
}

func (v view) at(i int) byte {
	if i < v.lo || i >= v.hi {
		return 0
	}
	return v.s[i]
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// wordAt reports whether v holds " word " (any case) at i.
func (v view) wordAt(i int, word string) bool {
	if v.at(i) != ' ' || v.at(i+len(word)+1) != ' ' {
		return false
	}
	for j := 0; j < len(word); j++ {
		if lower(v.at(i+1+j)) != word[j] {
			return false
		}
	}
	return true
}

// wordBefore returns the length of " word " (any case) ending at i in v,
// or 0.
func (v view) wordBefore(i int, words ...string) int {
	for _, w := range words {
		n := len(w) + 2
		if i-n >= v.lo && v.wordAt(i-n, w) {
			return n
		}
	}
	return 0
}

// ---- e-mail ----------------------------------------------------------------

func isLocalByte(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isLabelByte(c byte) bool { return isAlnum(c) || c == '-' }

// localStart returns where the local part ending at end begins: the
// longest run of local-part characters after floor.
func localStart(s string, floor, end int) int {
	j := end
	for j > floor {
		c := s[j-1]
		if c < utf8.RuneSelf {
			if !isLocalByte(c) {
				break
			}
			j--
			continue
		}
		r, n := utf8.DecodeLastRuneInString(s[floor:j])
		if r == utf8.RuneError || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
			break
		}
		j -= n
	}
	return j
}

// labelEnd returns the end of the domain label starting at i in v.
func labelEnd(v view, i int) int {
	j := i
	for j < v.hi {
		c := v.s[j]
		if c < utf8.RuneSelf {
			if !isLabelByte(c) {
				break
			}
			j++
			continue
		}
		r, n := utf8.DecodeRuneInString(v.s[j:v.hi])
		if r == utf8.RuneError || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
			break
		}
		j += n
	}
	return j
}

func scanEmails(v view, ms []Match) []Match {
	s := v.s
	floor := v.lo
	for i := v.lo; i < v.hi; i++ {
		c := s[i]
		var atStart, atEnd int
		spoken := false
		switch {
		case c == '@':
			atStart, atEnd = i, i+1
			if v.at(i-1) == ' ' && v.at(i+1) == ' ' {
				atStart, atEnd = i-1, i+2
			}
		case c == ' ' && v.wordAt(i, "at"):
			atStart, atEnd = i, i+4
			spoken = true
		default:
			continue
		}
		if atStart < floor {
			continue
		}
		if m, ok := parseEmail(v, floor, atStart, atEnd, spoken); ok {
			ms = append(ms, m)
			floor = m.End
			i = m.End - 1
		}
	}
	return ms
}

// parseEmail parses the address around the "@" (or spoken " at ") at
// s[atStart:atEnd]; the local part may not reach before floor.
func parseEmail(v view, floor, atStart, atEnd int, spokenAt bool) (Match, bool) {
	s := v.s
	// Local part, extended leftwards over spoken separators.
	start := localStart(s, floor, atStart)
	for start < atStart && s[start] == '.' {
		start++
	}
	if start == atStart {
		return Match{}, false
	}
	oneWord := true
	for {
		n := view{s, floor, v.hi}.wordBefore(start, "dot", "underscore", "dash")
		if n == 0 {
			break
		}
		p := localStart(s, floor, start-n)
		if p == start-n {
			break
		}
		start, oneWord = p, false
		for start < atStart && s[start] == '.' {
			start++
		}
	}
	if spokenAt && oneWord && isStopWord(s[start:atStart]) {
		return Match{}, false
	}

	// Domain: labels joined by "." or a spoken " dot ".
	spoken := spokenAt
	end := -1
	labels := 0
	i := atEnd
	for {
		j := labelEnd(v, i)
		if j == i {
			break
		}
		labels++
		if labels >= 2 && validTLD(s[i:j], spoken) {
			end = j
		}
		switch {
		case v.at(j) == '.' && j+1 < v.hi && labelEnd(v, j+1) > j+1:
			i = j + 1
		case v.wordAt(j, "dot") && labelEnd(v, j+5) > j+5:
			i = j + 5
			spoken = true
		default:
			return Match{KindEmail, start, end}, end > 0
		}
	}
	return Match{KindEmail, start, end}, end > 0
}

// validTLD reports whether label can end a domain: two or more ASCII
// letters (or an "xn--" label), and one of spokenTLDs for a spoken address.
func validTLD(label string, spoken bool) bool {
	if len(label) < 2 || len(label) > 63 {
		return false
	}
	var buf [8]byte
	if spoken {
		if len(label) > len(buf) {
			return false
		}
		for i := 0; i < len(label); i++ {
			buf[i] = lower(label[i])
		}
		return spokenTLDs[string(buf[:len(label)])]
	}
	if len(label) > 4 && lower(label[0]) == 'x' && lower(label[1]) == 'n' && label[2] == '-' && label[3] == '-' {
		return true
	}
	for i := 0; i < len(label); i++ {
		if !isAlpha(label[i]) {
			return false
		}
	}
	return true
}

// spokenTLDs are the top-level domains a spoken address may end in.
var spokenTLDs = map[string]bool{
	"com": true, "net": true, "org": true, "edu": true, "gov": true, "mil": true, "int": true,
	"io": true, "co": true, "ai": true, "app": true, "dev": true, "info": true, "biz": true,
	"me": true, "tv": true, "eu": true, "us": true, "uk": true, "ca": true, "au": true,
	"nz": true, "ie": true, "de": true, "at": true, "ch": true, "fr": true, "be": true,
	"nl": true, "lu": true, "es": true, "pt": true, "it": true, "se": true, "no": true,
	"dk": true, "fi": true, "is": true, "pl": true, "cz": true, "sk": true, "hu": true,
	"ro": true, "bg": true, "gr": true, "tr": true, "ru": true, "ua": true, "in": true,
	"jp": true, "cn": true, "kr": true, "br": true, "mx": true, "ar": true, "za": true,
}

// stopWords are everyday words (and contraction tails: "we're") that come
// before "at" in speech and so are not taken as a one-word local part ("I
// work at example dot com"). A rule on the text of the local part alone
// keeps Redact idempotent: the text before it may change once redacted.
var stopWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`
		a an the i you he she it we they me him her us them my your his its our their
		this that these those here there who what where when which someone anyone everyone
		is are was were be been being am do does did have has had will would can could
		and or but if so not no yes just only also still even both all
		look looks looking looked work works working worked live lives living lived
		stay stays staying stayed arrive arrives arriving arrived go goes going went gone
		come comes coming came get gets getting got meet meeting met see seen saw
		visit visiting visited check checking checked reach reached call calling called
		email mail write writing wrote send sending sent find found available online
		home back out up down in on off over office school work shop store job site
		website page aimed aim targeted point pointing pointed stare staring stared
		laugh laughing laughed smile smiling smiled good bad great best better well
		hosted based located listed published posted open opened closed start started
		stop stopped end ended begin began sign signed log logged re ve ll em`) {
		stopWords[w] = true
	}
}

func isStopWord(w string) bool {
	if len(w) < 2 {
		return true
	}
	var buf [16]byte
	if len(w) > len(buf) {
		return false
	}
	for i := 0; i < len(w); i++ {
		buf[i] = lower(w[i])
	}
	return stopWords[string(buf[:len(w)])]
}

// ---- IBAN ------------------------------------------------------------------

func scanIBANs(v view, ms []Match) []Match {
	s := v.s
	for i := v.lo; i+15 <= v.hi; i++ {
		if !isAlpha(s[i]) || isAlnum(v.at(i-1)) {
			continue
		}
		if !isAlpha(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
			continue
		}
		if end := ibanEnd(v, i); end > 0 {
			ms = append(ms, Match{KindIBAN, i, end})
			i = end - 1
		}
	}
	return ms
}

// ibanEnd returns the end of the longest valid IBAN starting at i (two
// letters and two digits there), or 0.
func ibanEnd(v view, i int) int {
	s := v.s
	check := int(s[i+2]-'0')*10 + int(s[i+3]-'0')
	if check < 2 || check > 98 {
		return 0
	}
	want := ibanLength(s[i], s[i+1])
	best, n, j := 0, 0, i
	for {
		for j < v.hi && isAlnum(s[j]) {
			j++
			if n++; n > 34 {
				return best
			}
		}
		if n >= 15 && (want == 0 || n == want) && mod97(s[i:j]) == 1 {
			best = j
		}
		if want != 0 && n >= want {
			return best
		}
		if v.at(j) != ' ' || !isAlnum(v.at(j+1)) {
			return best
		}
		j++
	}
}

// mod97 returns the ISO 7064 MOD 97-10 remainder of the IBAN in s (spaces
// skipped), its first four characters moved to the end.
func mod97(s string) int {
	var r uint64
	add := func(c byte) {
		switch {
		case isDigit(c):
			r = r*10 + uint64(c-'0')
		case isAlpha(c):
			r = r*100 + uint64(lower(c)-'a') + 10
		default:
			return
		}
		if r >= 1<<56 {
			r %= 97
		}
	}
	for i := 4; i < len(s); i++ {
		add(s[i])
	}
	for i := 0; i < 4; i++ {
		add(s[i])
	}
	return int(r % 97)
}

// ibanLengths are the registered IBAN lengths by country (SWIFT IBAN
// registry). Countries not listed get 15-34.
var ibanLengths [26 * 26]uint8

func init() {
	const table = "AD24AE23AL28AT20AZ28BA20BE16BG22BH22BR29BY28CH21CR22CY28CZ24DE22DK18DO28" +
		"EE20EG29ES24FI18FO18FR27GB22GE22GI23GL18GR27GT28HR21HU28IE22IL23IQ23IS26IT27" +
		"JO30KW30KZ20LB28LC32LI21LT20LU20LV21MC27MD24ME22MK19MR27MT31MU30NL18NO15PK24" +
		"PL28PS29PT25QA29RO24RS22SA24SC31SE24SI19SK24SM27ST25SV28TL23TN24TR26UA29VA22" +
		"VG24XK20"
	for i := 0; i+4 <= len(table); i += 4 {
		ibanLengths[int(table[i]-'A')*26+int(table[i+1]-'A')] = (table[i+2]-'0')*10 + table[i+3] - '0'
	}
}

func ibanLength(a, b byte) int {
	return int(ibanLengths[int(lower(a)-'a')*26+int(lower(b)-'a')])
}

// ---- cards -----------------------------------------------------------------

func scanCards(v view, ms []Match) []Match {
	s := v.s
	i := v.lo
	for i < v.hi {
		if !isDigit(s[i]) {
			i++
			continue
		}
		run := cardRunEnd(v, i)
		if p := v.at(i - 1); isAlnum(p) || p == '+' {
			i = run
			continue
		}
		for g := i; g < run; {
			if e := cardEnd(v, g, run); e > 0 {
				ms = append(ms, Match{KindCard, g, e})
				g = e + 1 // past the separator
				continue
			}
			for g < run && isDigit(s[g]) {
				g++
			}
			g++
		}
		i = run
	}
	return ms
}

// cardRunEnd returns the end of the run of digit groups separated by
// single spaces or dashes that starts at i.
func cardRunEnd(v view, i int) int {
	j := i
	for {
		for j < v.hi && isDigit(v.s[j]) {
			j++
		}
		if c := v.at(j); (c == ' ' || c == '-') && isDigit(v.at(j+1)) {
			j++
			continue
		}
		return j
	}
}

// cardEnd returns the end of the longest Luhn-valid card number of whole
// groups starting at group g of a run ending at run, or 0.
func cardEnd(v view, g, run int) int {
	s := v.s
	if s[g] == '0' {
		return 0
	}
	best, n := 0, 0
	for j := g; j < run; {
		for j < run && isDigit(s[j]) {
			j++
			n++
		}
		if n > 19 {
			break
		}
		if n >= 13 && !isAlnum(v.at(j)) && luhn(s[g:j]) {
			best = j
		}
		j++ // separator
	}
	return best
}

// luhn reports whether the digits of s (others skipped) pass the Luhn check.
func luhn(s string) bool {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// ---- phones ----------------------------------------------------------------

func scanPhones(v view, ms []Match) []Match {
	i := v.lo
	for i < v.hi {
		if !phoneStartsAt(v, i) {
			i++
			continue
		}
		p := parsePhone(v, i)
		if p.ok && phoneStartOK(v, i) {
			ms = append(ms, Match{KindPhone, p.start, p.end})
		}
		i = p.end
	}
	return ms
}

type phone struct {
	start, end int
	ok         bool
}

// parsePhone reads the run of digit groups starting at i (a digit, or a
// "+" or "(" before one) and reports whether it is a phone number by the
// package's rule (everything but the start context).
func parsePhone(v view, i int) phone {
	s := v.s
	p := phone{start: i}
	plus := s[i] == '+'
	depth, openAt := 0, -1
	j := i
	switch s[i] {
	case '+':
		j++
	case '(':
		depth, openAt = 1, i
		j++
	}
	var (
		digits, groups int
		gl             [4]int // the first four group lengths
		first          int    // start of the first group
		seps           byte   // the separator if all are the same, else 1
		dots           int
		allYears       = true
	)
	for {
		k := j
		for k < v.hi && isDigit(s[k]) {
			k++
		}
		if groups < len(gl) {
			gl[groups] = k - j
		}
		if groups == 0 {
			first = j
		}
		if k-j != 4 || !(s[j] == '1' && s[j+1] == '9' || s[j] == '2' && s[j+1] == '0') {
			allYears = false
		}
		groups++
		digits += k - j
		p.end = k
		n, sep := phoneGap(v, k, &depth)
		if n == 0 {
			break
		}
		if groups == 1 {
			seps = sep
		} else if seps != sep {
			seps = 1
		}
		if sep == '.' {
			dots++
		}
		j = k + n
	}
	if depth == 1 && openAt == p.start {
		p.start++ // an unclosed "(" before the number is not part of it
	}
	if digits < 7 || digits > 15 {
		return p
	}
	// End context.
	nx := v.at(p.end)
	if isAlnum(nx) || (nx == '+' || nx == '(') && isDigit(v.at(p.end+1)) ||
		(nx == '.' || nx == ',' || nx == ':' || nx == '/' || nx == '-') && phoneStartsAt(v, p.end+1) {
		return p
	}
	if currencyAfter(v, p.end) {
		return p
	}
	if plus {
		p.ok = true
		return p
	}
	switch {
	case dots == 1: // a decimal
		return p
	case groups == 3 && seps > 1 && seps != '(' && (gl[0] <= 2 && gl[1] <= 2 && (gl[2] == 2 || gl[2] == 4) ||
		gl[0] == 4 && gl[1] <= 2 && gl[2] <= 2): // a date
		return p
	case groups == 4 && seps == '.' && gl[0] <= 3 && gl[1] <= 3 && gl[2] <= 3 && gl[3] <= 3: // IPv4
		return p
	case groups >= 2 && (seps == '.' || seps == ' ') && thousands(s[first:p.end], gl[0], seps):
		return p
	case allYears:
		return p
	case groups == 1 && s[first] != '0' && strings.HasSuffix(s[first:p.end], "000"): // round
		return p
	}
	p.ok = true
	return p
}

// thousands reports whether the digit groups in s, separated by sep and
// the first being n digits long, are a number with thousands separators.
func thousands(s string, n int, sep byte) bool {
	if n > 3 || s[0] == '0' || sep == ' ' && n > 2 {
		return false
	}
	g := 0
	for i := n; i < len(s); i++ {
		if s[i] == sep {
			if i != n && g != 3 {
				return false
			}
			g = 0
			continue
		}
		g++
	}
	return g == 3
}

// phoneGap returns the length of the separator at i between two digit
// groups of a phone number (0 if there is none) and its kind: ' ', '-',
// '.', or '(' for any separator with a parenthesis.
func phoneGap(v view, i int, depth *int) (int, byte) {
	c0, c1, c2 := v.at(i), v.at(i+1), v.at(i+2)
	switch {
	case c0 == ' ' && c1 == '-' && c2 == ' ' && isDigit(v.at(i+3)):
		return 3, '-'
	case c0 == ' ' && c1 == '(' && *depth == 0 && isDigit(c2):
		*depth = 1
		return 2, '('
	case c0 == ')' && *depth == 1 && (c1 == ' ' || c1 == '-' || c1 == '.') && isDigit(c2):
		*depth = 0
		return 2, '('
	case c0 == ')' && *depth == 1 && isDigit(c1):
		*depth = 0
		return 1, '('
	case c0 == '(' && *depth == 0 && isDigit(c1):
		*depth = 1
		return 1, '('
	case (c0 == ' ' || c0 == '-' || c0 == '.') && isDigit(c1):
		return 1, c0
	}
	return 0, 0
}

// phoneStartsAt reports whether a phone number candidate starts at i:
// a digit, or a "+" or "(" before one.
func phoneStartsAt(v view, i int) bool {
	c := v.at(i)
	return isDigit(c) || (c == '+' || c == '(') && isDigit(v.at(i+1))
}

// phoneStartOK reports whether a phone number may start at i: not glued
// to a letter, a digit or a currency sign, and not the tail of a decimal,
// a time or a date ("<digit>." etc.).
func phoneStartOK(v view, i int) bool {
	p := v.at(i - 1)
	if isAlnum(p) || p == '+' {
		return false
	}
	if (p == '.' || p == ',' || p == ':' || p == '/' || p == '-') && isDigit(v.at(i-2)) {
		return false
	}
	j := i
	if p == ' ' {
		j--
	}
	return !currencyBefore(v, j)
}

// currencyBefore reports whether a currency sign ends at i.
func currencyBefore(v view, i int) bool {
	switch v.at(i - 1) {
	case '$':
		return true
	case 0xA3, 0xA5: // £ ¥
		return v.at(i-2) == 0xC2
	case 0xAC, 0xB9: // € ₹
		return v.at(i-2) == 0x82 && v.at(i-3) == 0xE2
	}
	return false
}

// currencyAfter reports whether a currency or percent sign follows i,
// after at most one space.
func currencyAfter(v view, i int) bool {
	if v.at(i) == ' ' {
		i++
	}
	switch v.at(i) {
	case '$', '%':
		return true
	case 0xC2:
		c := v.at(i + 1)
		return c == 0xA3 || c == 0xA5
	case 0xE2:
		c := v.at(i + 2)
		return v.at(i+1) == 0x82 && (c == 0xAC || c == 0xB9)
	}
	return false
}

// ---- spoken digits ---------------------------------------------------------

// isWordByte reports whether c can be part of a word: an ASCII letter or
// digit, an apostrophe or underscore ("o'clock", "one's"), or any byte of
// a non-ASCII character. Spoken digit words must not touch one.
func isWordByte(c byte) bool { return isAlnum(c) || c == '\'' || c == '_' || c >= utf8.RuneSelf }

// wordIs reports whether v holds word (lower case) at i, in any case,
// not followed by a word byte. The caller checks the byte before i.
func (v view) wordIs(i int, word string) bool {
	for j := 0; j < len(word); j++ {
		if lower(v.at(i+j)) != word[j] {
			return false
		}
	}
	return !isWordByte(v.at(i + len(word)))
}

// maybeDigitWord is a quick test of the first letters of the word at i
// in s, true for every digit word (and for few other words).
func maybeDigitWord(s string, i int) bool {
	var c1, c2 byte
	if i+2 < len(s) {
		c1, c2 = s[i+1]|0x20, s[i+2]|0x20
	} else if i+1 < len(s) {
		c1 = s[i+1] | 0x20
	}
	switch s[i] | 0x20 {
	case 'z':
		return c1 == 'e'
	case 'o':
		return c1 == 'h' || c1 == 'n' || c1 < 'a' || c1 > 'z'
	case 't':
		return c1 == 'w' || c1 == 'h' && c2 == 'r'
	case 'f':
		return c1 == 'o' && c2 == 'u' || c1 == 'i' && c2 == 'v'
	case 's':
		return c1 == 'i' && c2 == 'x' || c1 == 'e' && c2 == 'v'
	case 'e':
		return c1 == 'i' && c2 == 'g'
	case 'n':
		return c1 == 'i' && c2 == 'n'
	}
	return false
}

// digitWord returns the length and value of the spoken digit word ("zero",
// "oh", "o", "one" ... "nine", any case) at i in v, or 0.
func digitWord(v view, i int) (int, byte) {
	var w string
	var d byte
	switch lower(v.at(i)) {
	case 'z':
		w, d = "zero", 0
	case 'o':
		switch lower(v.at(i + 1)) {
		case 'h':
			w, d = "oh", 0
		case 'n':
			w, d = "one", 1
		default:
			w, d = "o", 0
		}
	case 't':
		if lower(v.at(i+1)) == 'w' {
			w, d = "two", 2
		} else {
			w, d = "three", 3
		}
	case 'f':
		if lower(v.at(i+1)) == 'o' {
			w, d = "four", 4
		} else {
			w, d = "five", 5
		}
	case 's':
		if lower(v.at(i+2)) == 'x' {
			w, d = "six", 6
		} else {
			w, d = "seven", 7
		}
	case 'e':
		w, d = "eight", 8
	case 'n':
		w, d = "nine", 9
	default:
		return 0, 0
	}
	if !v.wordIs(i, w) {
		return 0, 0
	}
	return len(w), d
}

// spokenRun is a run of spoken digits: s[start:end] holds digits digits
// (the first len(buf) of them in buf), words of them written as words.
type spokenRun struct {
	start, end    int
	digits, words int
	plus          bool
	buf           [19]byte
}

func (r *spokenRun) add(d byte, word bool) {
	if r.digits < len(r.buf) {
		r.buf[r.digits] = d
	}
	r.digits++
	if word {
		r.words++
	}
}

// kind returns the kind of personal data the run is, or "".
func (r *spokenRun) kind() string {
	if r.words < 2 {
		return "" // digits alone are for the digit scanners
	}
	if !r.plus && 13 <= r.digits && r.digits <= 19 && r.buf[0] != 0 && luhnDigits(r.buf[:r.digits]) {
		return KindCard
	}
	if 7 <= r.digits && r.digits <= 15 {
		return KindPhone
	}
	return ""
}

// luhnDigits reports whether the digit values ds pass the Luhn check.
func luhnDigits(ds []byte) bool {
	sum, double := 0, false
	for i := len(ds) - 1; i >= 0; i-- {
		d := int(ds[i])
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// numberPunct reports whether c may join two numbers in the eyes of the
// digit scanners (as a separator or as context: "1,5", "(555) 123").
func numberPunct(c byte) bool {
	switch c {
	case ' ', '-', '.', ',', ':', '/', '(', ')', '+':
		return true
	}
	return false
}

// digitsNear reports whether a digit is reached from i stepping by dir
// (-1 or +1) over at most three bytes of numberPunct. A group of digits
// with such a neighbour belongs to a number the digit scanners have
// judged, so a spoken run neither starts nor ends with it.
func digitsNear(v view, i, dir int) bool {
	for n := 0; n <= 3; n++ {
		c := v.at(i)
		if isDigit(c) {
			return true
		}
		if !numberPunct(c) {
			return false
		}
		i += dir
	}
	return false
}

// spokenToken reads the token of a spoken run at i: a digit word, "double"
// or "triple" and a digit word, or a group of ASCII digits; first says
// whether it would start the run. It adds the token's digits to r and
// returns its end, or 0.
func spokenToken(v view, i int, r *spokenRun, first bool) int {
	c := v.at(i)
	if isDigit(c) {
		j := i
		for isDigit(v.at(j)) {
			j++
		}
		if isWordByte(v.at(j)) || digitsNear(v, j, 1) || currencyAfter(v, j) {
			return 0
		}
		if first && (digitsNear(v, i-1, -1) || !phoneStartOK(v, i)) {
			return 0
		}
		for k := i; k < j; k++ {
			r.add(v.s[k]-'0', false)
		}
		return j
	}
	times := 1
	j := i
	switch lower(c) {
	case 'd':
		if v.wordIs(i, "double") && v.at(i+6) == ' ' {
			times, j = 2, i+7
		}
	case 't':
		if v.wordIs(i, "triple") && v.at(i+6) == ' ' {
			times, j = 3, i+7
		}
	}
	n, d := digitWord(v, j)
	if n == 0 {
		return 0
	}
	if first && times == 1 && d == 0 {
		// "o" never starts a run, nor does an "oh" before a comma ("Oh,
		// one two three ...").
		if n == 1 || n == 2 && v.at(j+n) == ',' {
			return 0
		}
	}
	for ; times > 0; times-- {
		r.add(d, true)
	}
	return j + n
}

// parseSpoken reads the run of spoken digits starting at i, at the start
// of a word: an optional "plus", then tokens separated by " ", "-" or ", ".
func parseSpoken(v view, i int) (spokenRun, bool) {
	r := spokenRun{start: i}
	j := i
	if lower(v.at(i)) == 'p' && v.wordIs(i, "plus") && v.at(i+4) == ' ' {
		r.plus = true
		j = i + 5
	}
	j = spokenToken(v, j, &r, true)
	if j == 0 {
		return r, false
	}
	for {
		n := 0
		switch v.at(j) {
		case ' ', '-':
			n = 1
		case ',':
			if v.at(j+1) == ' ' {
				n = 2
			}
		}
		if n == 0 {
			break
		}
		e := spokenToken(v, j+n, &r, false)
		if e == 0 {
			break
		}
		j = e
	}
	r.end = j
	return r, true
}

// scanSpoken finds numbers spoken digit by digit ("five five five one two
// three four five six seven"), as speech recognisers write them.
func scanSpoken(v view, ms []Match) []Match {
	s := v.s
	i := v.lo
	for i < v.hi {
		if !isAlnum(s[i]) {
			i++
			continue
		}
		if !isWordByte(v.at(i - 1)) {
			if r, ok := parseSpoken(v, i); ok {
				if kind := r.kind(); kind != "" {
					ms = append(ms, Match{kind, r.start, r.end})
				}
				i = r.end
				continue
			}
		}
		for i < v.hi && isWordByte(s[i]) {
			i++
		}
	}
	return ms
}
