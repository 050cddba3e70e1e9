package proc_test

import (
	"fmt"
	"testing"
	"unicode"

	"github.com/healthbridge/healthbridge/internal/proc"
)

// FuzzParseStat: a stat line built from any comm (spaces, parentheses,
// newlines, bytes that are not UTF-8), state, ppid and starttime parses
// back to exactly those; any bytes at all parse or are refused, without a
// panic and never to a blank state.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte("a) b (c"), byte('Z'), int32(17), uint64(93311), []byte("42 (sh) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12 0 0\n"))
	f.Add([]byte("x\n)y"), byte('R'), int32(1), uint64(0), []byte(")"))
	f.Add([]byte(""), byte(' '), int32(-1), uint64(1<<63), []byte("1 () Z"))
	f.Fuzz(func(t *testing.T, comm []byte, state byte, ppid int32, start uint64, raw []byte) {
		if len(comm) > 64 {
			comm = comm[:64]
		}
		// The kernel's state is one printable ASCII letter.
		if state <= ' ' || state >= 0x7f || state == ')' {
			state = 'S'
		}
		line := fmt.Sprintf("42 (%s) %c %d 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 %d 2527232 224\n", comm, state, ppid, start)
		st, ok := proc.ParseStat([]byte(line))
		if !ok || st.State != state || st.PPid != int(ppid) || st.StartTicks != start {
			t.Fatalf("%q: %+v %v, want state %c ppid %d start %d", line, st, ok, state, ppid, start)
		}
		if st, ok := proc.ParseStat(raw); ok && unicode.IsSpace(rune(st.State)) {
			t.Fatalf("%q parsed to a blank state", raw)
		}
	})
}
