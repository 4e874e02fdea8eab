package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
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

	tb   testing.TB
	dir  string
	args []string // more redis-server arguments (cluster mode, replicaof)
	conf string   // a config file, for a sentinel
	cmd  *exec.Cmd
	out  *strings.Builder
}

// Output is what redis-server printed since its last Start (warnings;
// a sentinel's failover events too).
func (r *Redis) Output() string {
	if r.out == nil {
		return ""
	}
	return r.out.String()
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

func newRedis(tb testing.TB, port int, args ...string) *Redis {
	r := &Redis{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, tb: tb, dir: tb.TempDir(), args: args}
	r.URL = "redis://" + r.Addr + "/0"
	return r
}

// Start starts redis-server (again, after Stop) on the same port.
func (r *Redis) Start() {
	r.tb.Helper()
	args := []string{"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--dir", r.dir, "--loglevel", "warning"}
	if r.conf != "" {
		args = []string{r.conf, "--sentinel", "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--dir", r.dir, "--loglevel", "notice"}
	}
	if r.conf == "" {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	cmd := exec.Command("redis-server", append(args, r.args...)...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	r.out = out
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

// CLI runs redis-cli against this server and returns its output.
func (r *Redis) CLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(r.Port)}, args...)...).CombinedOutput()
	return string(out), err
}

// waitFor polls cond every 50 ms until it holds or limit passes.
func waitFor(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("redis: %s did not happen within %s", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clusterPort is a free port whose cluster bus port (port+10000) is free
// too.
func clusterPort(tb testing.TB) int {
	tb.Helper()
	for i := 0; i < 50; i++ {
		p := FreePort(tb)
		if p > 55000 {
			continue
		}
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000)); err == nil {
			l.Close()
			return p
		}
	}
	tb.Fatal("no free port pair for a cluster node")
	return 0
}

// RedisCluster is a Redis Cluster of three masters (no replicas) on
// 127.0.0.1, created with redis-cli --cluster create.
type RedisCluster struct {
	// URL names every node: redis://first?addr=second&addr=third.
	URL   string
	Nodes []*Redis
}

// StartRedisCluster runs three cluster-mode redis-servers, joins them
// into one cluster with the 16384 slots split between them, and waits
// until every node reports the cluster ok. They stop when the test ends.
func StartRedisCluster(tb testing.TB) *RedisCluster {
	tb.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		tb.Fatal("redis-cli is not installed: run scripts/deps.sh (or apt-get install redis-tools)")
	}
	c := &RedisCluster{}
	create := []string{"--cluster", "create"}
	for i := 0; i < 3; i++ {
		r := newRedis(tb, clusterPort(tb), "--cluster-enabled", "yes", "--cluster-node-timeout", "1000")
		r.args = append(r.args, "--cluster-config-file", r.dir+"/nodes.conf")
		r.Start()
		tb.Cleanup(r.Stop)
		c.Nodes = append(c.Nodes, r)
		create = append(create, r.Addr)
	}
	if out, err := c.Nodes[0].CLI(append(create, "--cluster-replicas", "0", "--cluster-yes")...); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v: %s", err, out)
	}
	for _, r := range c.Nodes {
		waitFor(tb, 10*time.Second, r.Addr+" reporting cluster_state:ok", func() bool {
			out, _ := r.CLI("CLUSTER", "INFO")
			return strings.Contains(out, "cluster_state:ok")
		})
	}
	c.URL = "redis://" + c.Nodes[0].Addr + "?addr=" + c.Nodes[1].Addr + "&addr=" + c.Nodes[2].Addr
	return c
}

// RedisSentinel is one master, one replica and three sentinels watching
// them under the master name "k1sso", all on 127.0.0.1.
type RedisSentinel struct {
	// URL names the three sentinels and the master name.
	URL       string
	Master    *Redis
	Replica   *Redis
	Sentinels []*Redis
}

// SentinelMasterName is the name the sentinels of StartRedisSentinel
// give their master.
const SentinelMasterName = "k1sso"

// StartRedisSentinel runs a master, a replica of it and three sentinels
// (quorum 2) that call the master down after downAfter without an answer
// and may fail over again after failoverTimeout. It returns once the
// replica is in sync and every sentinel knows the replica and the other
// sentinels, so a failover can happen. Everything stops when the test
// ends.
func StartRedisSentinel(tb testing.TB, downAfter, failoverTimeout time.Duration) *RedisSentinel {
	tb.Helper()
	s := &RedisSentinel{Master: newRedis(tb, FreePort(tb))}
	s.Master.Start()
	tb.Cleanup(s.Master.Stop)
	s.Replica = newRedis(tb, FreePort(tb), "--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port))
	s.Replica.Start()
	tb.Cleanup(s.Replica.Stop)
	waitFor(tb, 10*time.Second, "the replica's sync", func() bool {
		out, _ := s.Replica.CLI("INFO", "replication")
		return strings.Contains(out, "master_link_status:up")
	})
	var addrs []string
	for i := 0; i < 3; i++ {
		r := newRedis(tb, FreePort(tb))
		r.conf = r.dir + "/sentinel.conf"
		conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 2\n"+
			"sentinel down-after-milliseconds %[1]s %[3]d\n"+
			"sentinel failover-timeout %[1]s %[4]d\n"+
			"sentinel parallel-syncs %[1]s 1\n",
			SentinelMasterName, s.Master.Port, downAfter.Milliseconds(), failoverTimeout.Milliseconds())
		if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
			tb.Fatal(err)
		}
		r.Start()
		tb.Cleanup(r.Stop)
		s.Sentinels = append(s.Sentinels, r)
		addrs = append(addrs, r.Addr)
	}
	for _, r := range s.Sentinels {
		waitFor(tb, 20*time.Second, r.Addr+" knowing the replica and the other sentinels", func() bool {
			out, _ := r.CLI("SENTINEL", "MASTER", SentinelMasterName)
			return strings.Contains(out, "num-slaves\n1\n") && strings.Contains(out, "num-other-sentinels\n2\n")
		})
	}
	s.URL = "redis://" + addrs[0] + "/0?master_name=" + SentinelMasterName + "&addr=" + addrs[1] + "&addr=" + addrs[2]
	return s
}

// MasterAddr asks the first sentinel that answers which address the
// master has now.
func (s *RedisSentinel) MasterAddr() string {
	for _, r := range s.Sentinels {
		out, err := r.CLI("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SentinelMasterName)
		if f := strings.Fields(out); err == nil && len(f) == 2 {
			return f[0] + ":" + f[1]
		}
	}
	return ""
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
