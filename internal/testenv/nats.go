package testenv

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS starts an in-process NATS server with JetStream on 127.0.0.1 and a
// random port, stopped at the end of the test.
func NATS(t testing.TB) *server.Server {
	t.Helper()
	o := &server.Options{
		Host: "127.0.0.1", Port: -1, ServerName: "test",
		JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true,
	}
	return startNATS(t, o)
}

// NATSWithStore starts an in-process JetStream server on a given store
// directory and port (-1 = random), for restart tests.
func NATSWithStore(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: port, ServerName: "test",
		JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true}
	return startNATS(t, o)
}

func startNATS(t testing.TB, o *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready after 10s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// NATSCluster starts n clustered JetStream servers on loopback and waits
// until a meta leader is elected. Servers can be shut down by the test to
// inject faults; Cleanup stops the rest.
func NATSCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	ports := FreePorts(t, n)
	routes := make([]*url.URL, n)
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)}
	}
	servers := make([]*server.Server, n)
	for i := range n {
		o := &server.Options{
			Host: "127.0.0.1", Port: -1, ServerName: fmt.Sprintf("n%d", i+1),
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Routes: routes,
		}
		o.Cluster.Name = "ember"
		o.Cluster.Host = "127.0.0.1"
		o.Cluster.Port = ports[i]
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatalf("start nats n%d: %v", i+1, err)
		}
		servers[i] = s
		go s.Start()
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
	})
	for _, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats cluster node not ready")
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range servers {
			if s.JetStreamIsLeader() {
				return servers
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no JetStream meta leader after 20s")
	return nil
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// Need returns the path of an external binary, skipping the test when it is
// missing locally and failing it under CI.
func Need(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv("TOOLS_BIN"); dir != "" {
		if p := dir + "/" + name; isExec(p) {
			return p
		}
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
		if p := dir + "/" + name; isExec(p) {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed: .ci/run must install it", name)
	}
	t.Skipf("%s not installed (run .ci/bootstrap.sh)", name)
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// WaitFor polls f every 10 ms until it returns nil or total elapses.
func WaitFor(t testing.TB, total time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("condition not met after %v: %v", total, err)
}
