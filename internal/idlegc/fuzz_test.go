package idlegc

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzCleanReadOnly: whatever /proc/self/smaps holds, a mapping is chosen
// for MADV_DONTNEED only if its own header says r-xp or r--p and names the
// executable's device and inode, and the first Anonymous: line after that
// header, before any other mapping's header, says 0. A false positive
// would drop private copy-on-write pages.
func FuzzCleanReadOnly(f *testing.F) {
	f.Add("00400000-00452000 r-xp 00000000 08:01 1234 /healthbridge\nSize: 328 kB\nAnonymous: 0 kB\nVmFlags: rd ex\n" +
		"00652000-00653000 r--p 00052000 08:01 1234 /healthbridge\nAnonymous: 4 kB\n" +
		"00653000-00654000 rw-p 00053000 08:01 1234 /healthbridge\nAnonymous: 0 kB\n")
	f.Add("00400000-00452000 r-xp 00000000 08:01 1234 /healthbridge\nSize: 328 kB\n00452000-00462000 r--p 00000000 08:01 1234 /x\nAnonymous: 0 kB\n")
	f.Add("7f0000000000-7f0000001000 r--p 00000000 fd:00 1234 /a b c\nAnonymous:\t0 kB\n")
	f.Fuzz(func(t *testing.T, smaps string) {
		const dev, ino = 0x0801, 1234 // 08:01
		regions, err := cleanReadOnly(strings.NewReader(smaps), dev, ino)
		if err != nil {
			return
		}
		lines := strings.Split(smaps, "\n")
		header := func(l string) bool {
			fs := strings.Fields(l)
			return len(fs) >= 5 && strings.Contains(fs[0], "-") && len(fs[1]) == 4
		}
		for _, r := range regions {
			ok := false
			for i, l := range lines {
				fs := strings.Fields(l)
				if !header(l) {
					continue
				}
				lo, hi, _ := strings.Cut(fs[0], "-")
				a, _ := strconv.ParseUint(lo, 16, 64)
				b, _ := strconv.ParseUint(hi, 16, 64)
				if uintptr(a) != r.start || uintptr(b) != r.end || (fs[1] != "r-xp" && fs[1] != "r--p") || !sameFile(fs[3], fs[4], dev, ino) {
					continue
				}
				for _, next := range lines[i+1:] {
					if header(next) {
						break
					}
					if nf := strings.Fields(next); len(nf) >= 2 && nf[0] == "Anonymous:" {
						ok = nf[1] == "0"
						break
					}
				}
				if ok {
					break
				}
			}
			if !ok {
				t.Fatalf("chose %#x-%#x, which no clean read-only mapping of the executable backs:\n%s", r.start, r.end, smaps)
			}
		}
	})
}
