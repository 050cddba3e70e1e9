package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildAppImage builds, in Docker, the application image of the node
// tests and benchmarks as tag: nodeapp (internal/kubetest/nodeapp, its
// ENTRYPOINT), a static busybox (sh, true, cat, ...) and the static
// healthbridge binary at healthbridge (for `healthbridge run -- /nodeapp`
// and sidecars that exec in their own container), FROM scratch.
// moduleRoot is healthbridge's module directory.
func BuildAppImage(moduleRoot, tag, healthbridge string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("no static busybox (apt-get install busybox-static): %v", err)
	}
	ctx, err := os.MkdirTemp("", "hb-nodeapp")
	if err != nil {
		return err
	}
	defer os.RemoveAll(ctx)
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(ctx, "nodeapp"), "./internal/kubetest/nodeapp")
	build.Dir, build.Env = moduleRoot, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build nodeapp: %v\n%s", err, out)
	}
	for src, dst := range map[string]string{bb: "busybox", healthbridge: "healthbridge"} {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(ctx, dst), b, 0o755); err != nil {
			return err
		}
	}
	df := `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/busybox", "mkdir", "-m", "1777", "/tmp"]
COPY nodeapp /nodeapp
COPY healthbridge /healthbridge
ENV PATH=/bin
ENTRYPOINT ["/nodeapp"]
`
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("docker", "build", "-q", "-t", tag, ctx).CombinedOutput(); err != nil {
		return fmt.Errorf("docker build nodeapp: %v\n%s", err, out)
	}
	return nil
}
