package gateway

import (
	"encoding/json"
	"sort"
	"strconv"

	"parley/realtime"
)

func sortStrings(s []string) { sort.Strings(s) }

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

func errorEventJSON(eventID, code, msg, param string) []byte {
	e := realtime.Invalid(code, param, "%s", msg)
	b, _ := json.Marshal(&realtime.ErrorEvent{Type: realtime.TypeError, EventID: eventID, Error: e})
	return b
}
