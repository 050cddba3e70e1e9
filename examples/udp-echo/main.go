// Command udp-echo is the example application of healthbridge's Kubernetes
// manifests: a UDP service with no health endpoint of its own, the case
// healthbridge exists for. It answers every datagram on :5353 with the same
// bytes; `udp-echo check` sends one and exits 0 when the echo returns
// within a second (the app container's own exec readinessProbe).
package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"time"
)

const addr = ":5353"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		if err := check(); err != nil {
			fmt.Fprintln(os.Stderr, "udp-echo check:", err)
			os.Exit(1)
		}
		return
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "udp-echo:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "udp-echo: answering on", pc.LocalAddr())
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			continue
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

func check() error {
	c, err := net.Dial("udp", "127.0.0.1"+addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	ping := []byte("ping")
	if _, err := c.Write(ping); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !bytes.Equal(buf[:n], ping) {
		return fmt.Errorf("answered %q", buf[:n])
	}
	return nil
}
