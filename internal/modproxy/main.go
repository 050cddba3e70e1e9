// Command modproxy writes a module, as of a source directory, into a
// file-based Go module proxy (GOPROXY=file://DIR), so that `go install
// MODULE/cmd/...@VERSION` can be tried as a user will run it once the
// repository is published: no replace directive, every requirement
// resolvable. .ci/run uses it; nothing ships it.
//
//	go run ./internal/modproxy -src DIR -version v0.1.0 -out PROXYDIR
//
// It writes PROXYDIR/<module path>/@v/{list, VERSION.info, VERSION.mod,
// VERSION.zip}; the zip is golang.org/x/mod/zip's, as the real proxies
// build them (files of nested modules and vendor directories left out).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

func main() {
	src := flag.String("src", ".", "the module's directory (a clean tree, e.g. from git archive)")
	version := flag.String("version", "", "the version to publish it as (required), e.g. v0.1.0")
	out := flag.String("out", "", "the proxy directory (required)")
	flag.Parse()
	if err := run(*src, *version, *out); err != nil {
		fmt.Fprintln(os.Stderr, "modproxy:", err)
		os.Exit(1)
	}
}

func run(src, version, out string) error {
	if version == "" || out == "" {
		return fmt.Errorf("-version and -out are required")
	}
	gomod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		return err
	}
	path := modfile.ModulePath(gomod)
	if path == "" {
		return fmt.Errorf("%s/go.mod names no module", src)
	}
	mv := module.Version{Path: path, Version: version}
	if err := module.Check(path, version); err != nil {
		return err
	}
	escaped, err := module.EscapePath(path)
	if err != nil {
		return err
	}
	dir := filepath.Join(out, escaped, "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, version+".zip"))
	if err != nil {
		return err
	}
	if err := zip.CreateFromDir(f, mv, src); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	info, _ := json.Marshal(map[string]string{"Version": version, "Time": time.Now().UTC().Format(time.RFC3339)})
	if err := os.WriteFile(filepath.Join(dir, version+".info"), info, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, version+".mod"), gomod, 0o644); err != nil {
		return err
	}
	fmt.Printf("%s@%s -> %s\n", path, version, dir)
	return os.WriteFile(filepath.Join(dir, "list"), []byte(version+"\n"), 0o644)
}
