package caddymodule

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/k1sso/k1sso/oidcrp"
)

func TestRecheckIntervalOption(t *testing.T) {
	for _, tc := range []struct {
		line string
		want caddy.Duration
		err  string
	}{
		{"recheck_interval 30s", caddy.Duration(30 * time.Second), ""},
		{"recheck_interval off", -1, ""},
		{"recheck_interval", 0, "recheck_interval takes a duration or off"},
		{"recheck_interval 1m 2m", 0, "recheck_interval takes a duration or off"},
		{"recheck_interval soon", 0, `recheck_interval: "soon" is not a positive duration or off`},
		{"recheck_interval -5m", 0, "is not a positive duration or off"},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(minimal + "\t" + tc.line + "\n}"))
		switch {
		case tc.err == "" && (err != nil || h.RecheckInterval != tc.want):
			t.Errorf("%s: %v, interval %v", tc.line, err, h.RecheckInterval)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "Testfile:")):
			t.Errorf("%s: error %v, want %q with file and line", tc.line, err, tc.err)
		}
	}
}

func TestProvisionRecheck(t *testing.T) {
	for _, tc := range []struct {
		interval caddy.Duration
		every    int64
		offline  bool
		err      string
	}{
		{0, 15 * 60, true, ""},
		{caddy.Duration(2 * time.Second), 2, true, ""},
		{-1, 0, false, ""},
		{caddy.Duration(500 * time.Millisecond), 0, false, "recheck_interval: too short (minimum 1s"},
	} {
		h := &Handler{RecheckOptions: RecheckOptions{RecheckInterval: tc.interval}, cfg: &config{scopes: []string{"openid", "email"}}}
		err := h.provisionRecheck()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want %q", tc.interval, err, tc.err)
			}
			continue
		}
		offered := oidcrp.New(context.Background(), oidcrp.Config{}).NewProvider(oidcrp.ProviderConfig{ScopesSupported: []string{"offline_access"}})
		if err != nil || h.recheckEvery != tc.every || slices.Contains(h.scopesFor(offered), "offline_access") != tc.offline ||
			slices.Contains(h.scopesFor(&k1Provider{}), "offline_access") {
			t.Errorf("%v: %v, every %ds, scopes %v / %v", tc.interval, err, h.recheckEvery, h.scopesFor(offered), h.scopesFor(&k1Provider{}))
		}
	}
}

func TestFormFieldsKeepOrderAndRepeats(t *testing.T) {
	got := formFields("b=2&a=1&a=%3Cx%3E&c=&d+e=f+g&&bad=%zz")
	want := []replayField{{"b", "2"}, {"a", "1"}, {"a", "<x>"}, {"c", ""}, {"d e", "f g"}}
	if !slices.Equal(got, want) {
		t.Fatalf("fields %v, want %v", got, want)
	}
}

func TestFormBudgetIsBounded(t *testing.T) {
	var b formBudget
	now := time.Unix(1_000_000, 0)
	for i := range maxFormsKept {
		if !b.take(now) {
			t.Fatalf("form %d refused below the limit", i)
		}
	}
	if b.take(now) {
		t.Fatal("a form beyond the limit was kept")
	}
	if !b.take(now.Add(formTTL + time.Second)) {
		t.Fatal("no room after the kept forms expired")
	}
}
