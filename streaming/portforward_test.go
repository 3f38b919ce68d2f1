package streaming

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	goruntime "runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// testNetNS makes a named network namespace with loopback up.
func testNetNS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	name := fmt.Sprintf("criserver-streamtest-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	if out, err := exec.Command("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	return "/run/netns/" + name
}

// listenInNetNS opens a TCP listener on 127.0.0.1 inside the namespace.
func listenInNetNS(t *testing.T, path string) net.Listener {
	t.Helper()
	ch := make(chan any, 1)
	go func() {
		// This thread is left in the namespace and ends with the goroutine.
		goruntime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			ch <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- err
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			ch <- err
			return
		}
		ch <- l
	}()
	switch v := (<-ch).(type) {
	case net.Listener:
		t.Cleanup(func() { v.Close() })
		return v
	case error:
		t.Fatal(v)
	}
	return nil
}

func TestPortForwardInNetNS(t *testing.T) {
	ns := testNetNS(t)
	l := listenInNetNS(t, ns)
	port := int32(l.Addr().(*net.TCPAddr).Port)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				fmt.Fprintf(c, "echo:%s", b)
			}()
		}
	}()

	// Nothing listens on that port on the host: only a dial made inside
	// the namespace can succeed.
	if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
		c.Close()
		t.Skip("the port is also open on the host")
	}
	client, server := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		done <- PortForward(context.Background(), ns, port, server)
		server.Close()
	}()
	io.WriteString(client, "ping")
	client.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(client)
	if err != nil || string(b) != "echo:ping" {
		t.Fatalf("answer %q, %v", b, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("PortForward: %v", err)
	}

	// A port nobody listens on fails before anything is copied.
	_, server2 := tcpPair(t)
	if err := PortForward(context.Background(), ns, port+1, server2); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("forward to a closed port: %v", err)
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}
