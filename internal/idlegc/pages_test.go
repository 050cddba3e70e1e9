package idlegc

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rssFile returns this process's file-backed resident memory in kB
// (/proc/self/status RssFile).
func rssFile(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("RssFile: %q", v)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestDropStartupPagesLowersRssFile drops the test binary's own start-up
// pages: its file-backed resident memory falls, and the process goes on
// running code (this test's rest) from pages that fault back in.
func TestDropStartupPagesLowersRssFile(t *testing.T) {
	before := rssFile(t)
	n, err := DropStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	if n <= 0 {
		t.Fatalf("dropped %d bytes of mappings", n)
	}
	// The text and read-only data of a Go test binary are megabytes, most
	// of them mapped by now; what this goroutine and the runtime fault back
	// in between the two reads is a few 64 KiB windows.
	if after >= before {
		t.Fatalf("RssFile %d kB before, %d kB after dropping %d bytes of mappings", before, after, n)
	}
	t.Logf("RssFile %d kB → %d kB (%d bytes of mappings advised)", before, after, n)
}

// TestCleanReadOnlySparesPrivatePages maps one file three times in this
// process: read-only and untouched (droppable), read-only after a private
// write (copy-on-write pages: must be kept, MADV_DONTNEED would lose the
// write) and read-write (never a candidate). Only the first is chosen from
// the real /proc/self/smaps; dropping it keeps its contents readable and
// leaves the private write where it was.
func TestCleanReadOnlySparesPrivatePages(t *testing.T) {
	page := os.Getpagesize()
	content := bytes.Repeat([]byte("healthbridge"), 2*page/12+1)[:2*page]
	path := filepath.Join(t.TempDir(), "mapped")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	fw, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	mmap := func(fd uintptr, prot int) []byte {
		t.Helper()
		m, err := unix.Mmap(int(fd), 0, len(content), prot, unix.MAP_PRIVATE)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Munmap(m) })
		return m
	}
	clean := mmap(f.Fd(), unix.PROT_READ)
	_ = clean[0] + clean[page] // resident
	written := mmap(fw.Fd(), unix.PROT_READ|unix.PROT_WRITE)
	written[0] = 'X' // a private copy of the first page
	if err := unix.Mprotect(written, unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	rw := mmap(fw.Fd(), unix.PROT_READ|unix.PROT_WRITE)
	_ = rw[0]

	smaps, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	regions, err := cleanReadOnly(smaps, uint64(st.Dev), st.Ino)
	smaps.Close()
	if err != nil {
		t.Fatal(err)
	}
	start := func(m []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(m))) }
	if len(regions) != 1 || regions[0].start != start(clean) || regions[0].end != start(clean)+uintptr(len(content)) {
		t.Fatalf("chose %#x; want only the clean read-only mapping at %#x (the written one is at %#x, the read-write one at %#x)",
			regions, start(clean), start(written), start(rw))
	}
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, regions[0].start, regions[0].end-regions[0].start, unix.MADV_DONTNEED); e != 0 {
		t.Fatal(e)
	}
	if !bytes.Equal(clean, content) {
		t.Fatal("the dropped mapping no longer reads as the file")
	}
	if written[0] != 'X' || !bytes.Equal(written[1:], content[1:]) {
		t.Fatal("the private write was lost")
	}
}

func TestSameFile(t *testing.T) {
	dev := unix.Mkdev(0xfd, 0x1)
	for _, tt := range []struct {
		devField, inoField string
		want               bool
	}{
		{"fd:01", "1234", true},
		{"fd:1", "1234", true},
		{"fd:02", "1234", false},
		{"fd:01", "1235", false},
		{"00:00", "0", false},
		{"fd01", "1234", false},
		{"fd:01", "x", false},
	} {
		if got := sameFile(tt.devField, tt.inoField, dev, 1234); got != tt.want {
			t.Errorf("sameFile(%q, %q) = %v, want %v", tt.devField, tt.inoField, got, tt.want)
		}
	}
	if sameFile("00:00", "0", unix.Mkdev(0, 0), 0) {
		t.Error("inode 0 (an anonymous mapping) matched")
	}
}

// TestCleanReadOnlyNeedsAnonymousZero: a mapping is chosen only when smaps
// shows it with "Anonymous: 0 kB"; one whose line is missing (a /proc that
// does not report it) or non-zero is kept, as are writable mappings and
// other files'.
func TestCleanReadOnlyNeedsAnonymousZero(t *testing.T) {
	const smaps = `00400000-00500000 r-xp 00000000 fd:01 1234                               /bin/hb
Rss:                 100 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00500000-00600000 r--p 00100000 fd:01 1234                               /bin/hb
Rss:                 100 kB
VmFlags: rd mr mw me
00600000-00700000 r--p 00200000 fd:01 1234                               /bin/hb
Anonymous:             4 kB
00700000-00800000 rw-p 00300000 fd:01 1234                               /bin/hb
Anonymous:             0 kB
00800000-00900000 r-xp 00000000 fd:01 9999                               /lib/other
Anonymous:             0 kB
00900000-00a00000 rw-p 00000000 00:00 0 
Anonymous:            12 kB
`
	got, err := cleanReadOnly(strings.NewReader(smaps), unix.Mkdev(0xfd, 1), 1234)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != (region{0x400000, 0x500000}) {
		t.Fatalf("chose %#x, want only 0x400000-0x500000", got)
	}
	if _, err := cleanReadOnly(strings.NewReader("zz-00500000 r-xp 00000000 fd:01 1234 /bin/hb\n"), unix.Mkdev(0xfd, 1), 1234); err == nil {
		t.Fatal("a malformed mapping line was accepted")
	}
}
