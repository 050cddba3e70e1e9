package idlegc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// DropStartupPages unmaps from this process the pages of its own
// executable that only start-up touched, and returns how many bytes of
// mappings it advised away.
//
// Why: Go runs every linked package's initialiser before main, and the
// kernel maps file pages 64 KiB around each fault ("fault-around"), so
// after start-up about 90 % of a static binary's text and read-only data
// is mapped and counted in VmRSS (RssFile), although the steady state —
// probe, record, serve — runs a fraction of it. bench/idle measured the
// lean build at 6.7 MB of RssFile a minute after start, of which 3.8 MB
// came back when the steady state refaulted what it uses.
//
// What: every mapping of the executable (matched by device and inode, so
// a binary replaced on disk still matches) that is read-only (r-xp, r--p)
// and has no private copy-on-write pages (smaps' Anonymous: 0 kB) gets
// madvise(MADV_DONTNEED). For such a mapping that only removes the page
// table entries: the pages stay in the page cache, shared with every
// other process of the same binary, and the next access maps them again
// (a minor fault, no I/O; if the kernel has evicted a page meanwhile, it
// is read from the file again, as after any reclaim). A mapping with private pages — a PIE binary's
// relocated RELRO segment — is left alone, since MADV_DONTNEED would
// replace its private pages with the file's. What this changes is
// accounting: VmRSS shows the working set, and the dropped pages, no
// longer mapped, are the first the kernel reclaims under memory pressure
// (inactive file pages, which the kubelet's working-set figure leaves
// out). It frees no page cache.
//
// Errors: reading /proc/self/exe or /proc/self/smaps, or an madvise that
// the kernel refuses; the pages then stay mapped, which is harmless.
func DropStartupPages() (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("idlegc: the executable: %w", err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("idlegc: %w", err)
	}
	defer f.Close()
	regions, err := cleanReadOnly(f, uint64(st.Dev), st.Ino)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range regions {
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_DONTNEED); e != 0 {
			return n, fmt.Errorf("idlegc: madvise %#x-%#x: %w", r.start, r.end, e)
		}
		n += int64(r.end - r.start)
	}
	return n, nil
}

// region is one mapping's address range, [start, end).
type region struct{ start, end uintptr }

// cleanReadOnly reads /proc/<pid>/smaps and returns the mappings of the
// file with device dev and inode ino that are read-only and private and
// that smaps shows with no anonymous (copy-on-write) pages: the ones
// MADV_DONTNEED can drop without losing anything. A mapping whose
// "Anonymous:" line is missing is not chosen: what cannot be seen to be
// clean is kept.
func cleanReadOnly(smaps io.Reader, dev, ino uint64) ([]region, error) {
	var out []region
	var cur *region // the current mapping, until its Anonymous: line
	s := bufio.NewScanner(smaps)
	for s.Scan() {
		line := s.Text()
		fs := strings.Fields(line)
		if len(fs) >= 5 && strings.Contains(fs[0], "-") && len(fs[1]) == 4 {
			// A mapping's header: addresses, perms, offset, dev, inode, path.
			cur = nil
			if (fs[1] != "r-xp" && fs[1] != "r--p") || !sameFile(fs[3], fs[4], dev, ino) {
				continue
			}
			lo, hi, _ := strings.Cut(fs[0], "-")
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil || b <= a {
				return nil, fmt.Errorf("idlegc: smaps: malformed mapping %q", line)
			}
			cur = &region{uintptr(a), uintptr(b)}
			continue
		}
		if cur != nil && len(fs) >= 2 && fs[0] == "Anonymous:" {
			if fs[1] == "0" {
				out = append(out, *cur)
			}
			cur = nil
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("idlegc: smaps: %w", err)
	}
	return out, nil
}

// sameFile reports whether smaps' "major:minor" (hex) and inode fields
// name the file with device dev and inode ino.
func sameFile(devField, inoField string, dev, ino uint64) bool {
	i, err := strconv.ParseUint(inoField, 10, 64)
	if err != nil || i != ino || ino == 0 {
		return false
	}
	maj, min, ok := strings.Cut(devField, ":")
	if !ok {
		return false
	}
	ma, err1 := strconv.ParseUint(maj, 16, 32)
	mi, err2 := strconv.ParseUint(min, 16, 32)
	return err1 == nil && err2 == nil && unix.Mkdev(uint32(ma), uint32(mi)) == dev
}
