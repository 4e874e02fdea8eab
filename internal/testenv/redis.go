package testenv

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis is a real redis-server for tests: on 127.0.0.1, on a free port,
// without persistence.
type Redis struct {
	URL  string // redis://127.0.0.1:port/0
	Addr string
	Port int

	tb  testing.TB
	dir string
	cmd *exec.Cmd
}

// StartRedis runs redis-server and waits until it answers PING. It fails
// the test when redis-server is not installed. It is stopped when the test
// ends.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatal("redis-server is not installed: run scripts/deps.sh (or apt-get install redis-server)")
	}
	port := FreePort(tb)
	r := &Redis{
		Addr: "127.0.0.1:" + strconv.Itoa(port),
		Port: port,
		tb:   tb,
		dir:  tb.TempDir(),
	}
	r.URL = "redis://" + r.Addr + "/0"
	r.Start()
	tb.Cleanup(r.Stop)
	return r
}

// Start starts redis-server (again, after Stop) on the same port.
func (r *Redis) Start() {
	r.tb.Helper()
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--loglevel", "warning")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		r.tb.Fatalf("starting redis-server: %v", err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for !r.ping() {
		if time.Now().After(deadline) {
			r.Stop()
			r.tb.Fatalf("redis-server on %s did not answer PING: %s", r.Addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills redis-server and waits until it is gone.
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Do sends one command (simple arguments) and returns the first line of
// the answer, e.g. ":3" or "+OK".
func (r *Redis) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", r.Addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func (r *Redis) ping() bool {
	s, err := r.Do("PING")
	return err == nil && s == "+PONG"
}

// answers reports whether url answers HTTP at all.
func answers(url string) bool {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}
