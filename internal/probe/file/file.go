// Package file is the file probe: success while a file exists and, with
// maxAgeSeconds, was modified recently — the heartbeat file a batch worker
// touches, the marker an init step leaves, the socket a daemon creates.
// A stat on a hung mount blocks in the kernel; the run is then abandoned
// at its timeout as any prober that cannot be stopped (probe.Run).
package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// Kind is the file kind: `file: {path, maxAgeSeconds}`.
var Kind = probe.Kind{
	Name: "file",
	Has:  func(c *config.Check) bool { return c.File != nil },
	Validate: func(c *config.Check, path string) []error {
		var errs []error
		if f := c.File; !filepath.IsAbs(f.Path) {
			errs = append(errs, config.Errorf(path+".file.path", "must be an absolute path, got %q", f.Path))
		}
		if c.File.MaxAgeSeconds < 0 {
			errs = append(errs, config.Errorf(path+".file.maxAgeSeconds", "must be ≥ 0, got %d", c.File.MaxAgeSeconds))
		}
		return errs
	},
	New: func(c *config.Check, _ probe.Deps) (probe.Prober, error) {
		return New(c.File.Path, time.Duration(c.File.MaxAgeSeconds)*time.Second), nil
	},
	OneShot: &probe.OneShot{
		Words:   []string{"file"},
		Schemes: []string{"file"},
		// file:///PATH: the path is the file.
		Target: func(u *url.URL) ([]string, error) {
			if u.Host != "" || u.Path == "" {
				return nil, errors.New("want file:///PATH (three slashes: the path is absolute)")
			}
			return []string{"file", u.Path}, nil
		},
		Usage: "file PATH [--max-age 30s] [-v]",
		Flags: func(fs *pflag.FlagSet) func(probe.Args) (probe.Prober, string, error) {
			maxAge := fs.Duration("max-age", 0, "fail a file modified longer ago than this (0: off)")
			return func(a probe.Args) (probe.Prober, string, error) {
				if len(a.Pos) != 2 {
					return nil, "", errors.New("file: want exactly one PATH")
				}
				if *maxAge < 0 {
					return nil, "", fmt.Errorf("--max-age: must be ≥ 0, got %v", *maxAge)
				}
				return New(a.Pos[1], *maxAge), a.Pos[1], nil
			}
		},
	},
}

// Prober stats one path per Probe call.
type Prober struct {
	path   string
	maxAge time.Duration // 0: any age
}

// New builds a prober for path; maxAge 0 accepts any age.
func New(path string, maxAge time.Duration) *Prober { return &Prober{path: path, maxAge: maxAge} }

// Probe stats the path: missing, unreadable or too old is a failure
// saying which.
func (p *Prober) Probe(ctx context.Context) probe.Result {
	fi, err := os.Stat(p.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return probe.Failure("%s does not exist", p.path)
	case err != nil:
		return probe.Failure("%v", err)
	}
	age := time.Since(fi.ModTime())
	if p.maxAge > 0 && age > p.maxAge {
		return probe.Failure("%s was last modified %v ago, over maxAge %v", p.path, age.Round(time.Second), p.maxAge)
	}
	return probe.Success(fmt.Sprintf("%s modified %v ago", p.path, age.Round(time.Second)))
}
