package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run measured.
type wrkResult struct {
	Requests int64
	RPS      float64
	P50, P99 time.Duration // from wrk --latency
	Errors   int64         // non-2xx/3xx plus socket errors
	CPU      float64       // CPU seconds wrk itself used
}

var (
	reqsRE    = regexp.MustCompile(`(\d+) requests in`)
	rpsRE     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	pctRE     = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$`)
	non2xxRE  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	socketRE  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	unitScale = map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}
)

// wrkOpts describe one load run.
type wrkOpts struct {
	URL      string
	Conns    int
	Threads  int
	Duration time.Duration
	Cookie   string   // sent on every request (no script)
	Script   string   // a Lua script instead of Cookie
	Args     []string // the script's arguments
}

// runWrk runs wrk once, bounded by its duration plus a margin.
func runWrk(bin string, o wrkOpts) (wrkResult, string, error) {
	args := []string{"-t", strconv.Itoa(o.Threads), "-c", strconv.Itoa(o.Conns),
		"-d", fmt.Sprintf("%ds", int(o.Duration/time.Second)), "--latency", "--timeout", "5s"}
	if o.Cookie != "" {
		args = append(args, "-H", "Cookie: "+o.Cookie)
	}
	if o.Script != "" {
		args = append(args, "-s", o.Script)
	}
	args = append(args, o.URL)
	if o.Script != "" && len(o.Args) > 0 {
		args = append(args, "--")
		args = append(args, o.Args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Duration+60*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return wrkResult{}, out.String(), fmt.Errorf("wrk: %w: %s", err, out.String())
	}
	r, err := parseWrk(out.String())
	r.CPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return r, out.String(), err
}

func parseWrk(s string) (wrkResult, error) {
	var r wrkResult
	m := reqsRE.FindStringSubmatch(s)
	m2 := rpsRE.FindStringSubmatch(s)
	if m == nil || m2 == nil {
		return r, fmt.Errorf("wrk: unexpected output: %s", s)
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.RPS, _ = strconv.ParseFloat(m2[1], 64)
	for _, p := range pctRE.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		d := time.Duration(v * float64(unitScale[p[3]]))
		if p[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if m := non2xxRE.FindStringSubmatch(s); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.Errors += n
	}
	if m := socketRE.FindStringSubmatch(s); m != nil {
		for _, x := range m[1:] {
			n, _ := strconv.ParseInt(x, 10, 64)
			r.Errors += n
		}
	}
	if strings.Contains(s, "Latency Distribution") && (r.P50 == 0 || r.P99 == 0) {
		return r, fmt.Errorf("wrk: no latency percentiles in: %s", s)
	}
	return r, nil
}

// cyclerLua sends, on each request, the next Cookie header from a file of
// cookie values (one per line); each wrk thread takes every n-th line, so
// threads do not send the same cookie at the same time.
const cyclerLua = `
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
local cookies = {}
local idx = 1
function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == tid then cookies[#cookies + 1] = line end
    i = i + 1
  end
  if #cookies == 0 then error("no cookies for thread " .. tid) end
end
function request()
  local c = cookies[idx]
  idx = idx + 1
  if idx > #cookies then idx = 1 end
  return wrk.format(nil, nil, {["Cookie"] = c})
end
`
