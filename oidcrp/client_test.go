package oidcrp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/oidcrp"
)

// outcomes records the OnDiscovery calls of a Client.
type outcomes struct {
	mu   sync.Mutex
	errs []error
}

func (o *outcomes) record(err error, _ time.Duration) {
	o.mu.Lock()
	o.errs = append(o.errs, err)
	o.mu.Unlock()
}

func (o *outcomes) all() []error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]error(nil), o.errs...)
}

// TestDiscoveryIssuerExact: the issuer is compared exactly, trailing slash
// included. A mismatch is a typed error naming both issuers, reported
// once per attempt and returned again during the backoff; an issuer with
// a trailing slash configured as published works.
func TestDiscoveryIssuerExact(t *testing.T) {
	op := hostileop.Start(t)
	op.SetIssuer(op.URL + "/")
	var seen outcomes
	c := newClient(t, op, func(cfg *oidcrp.Config) { cfg.Issuer, cfg.OnDiscovery, cfg.MaxBackoff = op.URL, seen.record, time.Hour })
	for i := range 2 {
		_, err := c.Provider(context.Background())
		var mismatch *oidcrp.IssuerMismatchError
		if !errors.As(err, &mismatch) || mismatch.Configured != op.URL || mismatch.Published != op.URL+"/" {
			t.Fatalf("attempt %d: %v, want an issuer mismatch", i, err)
		}
		if !strings.Contains(err.Error(), oidcrp.DiscoveryURL(op.URL)) {
			t.Errorf("%q does not name the discovery URL", err)
		}
	}
	if errs := seen.all(); len(errs) != 1 {
		t.Errorf("OnDiscovery told %v, want one mismatch", errs)
	}
	if p, _ := c.Loaded(); p != nil {
		t.Error("Loaded: a provider after a mismatch")
	}

	c = newClient(t, op, func(cfg *oidcrp.Config) { cfg.Issuer = op.URL + "/" })
	p := provider(t, c)
	if p.Issuer() != op.URL+"/" || c.Issuer() != op.URL+"/" {
		t.Errorf("issuer %q", p.Issuer())
	}
	raw, _, nonce := login(t, c, p, op, hostileop.Behavior{})
	if _, err := p.VerifyIDToken(context.Background(), raw, oidcrp.IDTokenOptions{Nonce: nonce, ClockSkew: time.Minute}); err != nil {
		t.Fatalf("token of an issuer with a trailing slash: %v", err)
	}
	raw, _, nonce = login(t, c, p, op, hostileop.Behavior{Claims: set("iss", op.URL)})
	_, err := p.VerifyIDToken(context.Background(), raw, oidcrp.IDTokenOptions{Nonce: nonce, ClockSkew: time.Minute})
	wantReason(t, err, oidcrp.ReasonIssuer)
}

// TestDiscoveryDocument: what discovery yields, and the documents that
// cannot be used (a configuration problem, retried at the longest
// backoff, not an outage).
func TestDiscoveryDocument(t *testing.T) {
	const algs = "id_token_signing_alg_values_supported"
	for _, tc := range []struct {
		name    string
		edit    func(d map[string]any)
		algs    string // accepted algorithms; "": the document is refused
		problem string
	}{
		{name: "hostile list", edit: func(map[string]any) {}, algs: "RS256"},
		{name: "absent: RS256", edit: del(algs), algs: "RS256"},
		{name: "PS256 and RS256", edit: set(algs, []string{"PS256", "HS512", "RS256"}), algs: "PS256 RS256"},
		{name: "none and HS256 only", edit: set(algs, []string{"none", "HS256"}), problem: algs},
		{name: "no jwks_uri", edit: del("jwks_uri"), problem: "jwks_uri"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := hostileop.Start(t)
			op.SetDiscovery(tc.edit)
			c := newClient(t, op)
			p, err := c.Provider(context.Background())
			if tc.problem != "" {
				var invalid *oidcrp.DiscoveryError
				if !errors.As(err, &invalid) || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("%v, want a discovery error naming %s", err, tc.problem)
				}
				if errors.Is(err, oidcrp.ErrUnavailable) || c.LastError() != nil {
					t.Error("an unusable document counts as an outage")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(p.Algorithms(), " "); got != tc.algs {
				t.Errorf("algorithms %q, want %q", got, tc.algs)
			}
		})
	}
}

// TestProviderMetadata: the endpoints and flags of discovery.
func TestProviderMetadata(t *testing.T) {
	op := hostileop.Start(t)
	op.SetDiscovery(func(d map[string]any) {
		d["end_session_endpoint"] = op.URL + "/end_session"
		d["authorization_response_iss_parameter_supported"] = true
		d["scopes_supported"] = []string{"openid", "offline_access"}
	})
	c := newClient(t, op)
	p := provider(t, c)
	if p.EndSessionEndpoint() != op.URL+"/end_session" || !p.IssParameterSupported() || !p.SupportsScope("offline_access") || p.SupportsScope("admin") ||
		p.UserInfoEndpoint() != op.URL+"/userinfo" || p.Endpoint().TokenURL != op.URL+"/token" || p.Endpoint().AuthURL != op.URL+"/authorize" {
		t.Errorf("metadata: end_session %q iss %v userinfo %q endpoint %+v", p.EndSessionEndpoint(), p.IssParameterSupported(), p.UserInfoEndpoint(), p.Endpoint())
	}
	if q, at := c.Loaded(); q != p || at.IsZero() {
		t.Errorf("Loaded: %p at %s, want %p", q, at, p)
	}
	if again := provider(t, c); again != p || op.DiscoveryHits() != 1 {
		t.Errorf("a second Provider call: %d discovery fetches", op.DiscoveryHits())
	}
	plain := provider(t, newClient(t, hostileop.Start(t)))
	if plain.EndSessionEndpoint() != "" || plain.IssParameterSupported() || plain.SupportsScope("offline_access") {
		t.Error("metadata the document does not have")
	}
}

// TestNewProvider: a provider described without discovery verifies
// tokens like a discovered one.
func TestNewProvider(t *testing.T) {
	op := hostileop.Start(t)
	c := newClient(t, op)
	p := c.NewProvider(oidcrp.ProviderConfig{AuthURL: op.URL + "/authorize", TokenURL: op.URL + "/token", JWKSURL: op.URL + "/jwks",
		UserInfoURL: op.URL + "/userinfo", EndSessionURL: op.URL + "/end", Algorithms: []string{"RS256", "none"}, ScopesSupported: []string{"offline_access"}})
	if got := strings.Join(p.Algorithms(), " "); got != "RS256" || !p.SupportsScope("offline_access") || p.EndSessionEndpoint() != op.URL+"/end" {
		t.Errorf("algorithms %q", got)
	}
	raw, _, nonce := login(t, c, p, op, hostileop.Behavior{})
	if _, err := p.VerifyIDToken(context.Background(), raw, oidcrp.IDTokenOptions{Nonce: nonce, ClockSkew: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if op.DiscoveryHits() != 0 {
		t.Error("NewProvider fetched discovery")
	}
}

// TestDiscoveryBackoff: an unreachable provider is ErrUnavailable, its
// network error kept for the logs; attempts wait for the backoff (which
// doubles), concurrent callers share one attempt, and Warm keeps trying
// until the provider answers.
func TestDiscoveryBackoff(t *testing.T) {
	op := hostileop.Start(t)
	op.SetDown(true)
	var seen outcomes
	var called bool
	c := newClient(t, op, func(cfg *oidcrp.Config) {
		cfg.MinBackoff, cfg.MaxBackoff, cfg.OnDiscovery = 100*time.Millisecond, 400*time.Millisecond, seen.record
		cfg.CallContext = func(base, caller context.Context) context.Context { called = true; return base }
	})
	if _, err := c.Provider(context.Background()); !errors.Is(err, oidcrp.ErrUnavailable) || c.LastError() == nil {
		t.Fatalf("down: %v (last error %v), want ErrUnavailable", err, c.LastError())
	}
	if !called {
		t.Error("CallContext was not used")
	}
	hits := op.DiscoveryHits()
	if _, err := c.Provider(context.Background()); !errors.Is(err, oidcrp.ErrUnavailable) || op.DiscoveryHits() != hits {
		t.Fatalf("within the backoff: %v, %d more fetches", err, op.DiscoveryHits()-hits)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { c.Warm(ctx); close(done) }()
	time.Sleep(300 * time.Millisecond)
	op.SetDown(false)
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Warm did not return after the provider came back")
	}
	if p, _ := c.Loaded(); p == nil {
		t.Fatal("Warm returned without a provider")
	}
	errs := seen.all()
	if len(errs) < 2 || errs[len(errs)-1] != nil || errs[0] == nil || errors.Is(errs[0], oidcrp.ErrUnavailable) {
		t.Errorf("OnDiscovery told %v, want network errors, then nil", errs)
	}

	// Concurrent callers of a slow discovery share one fetch; one that
	// gives up early gets ErrUnavailable.
	op = hostileop.Start(t)
	op.Set(hostileop.Behavior{DiscoveryDelay: 300 * time.Millisecond})
	c = newClient(t, op)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := c.Provider(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	short, cancelShort := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancelShort()
	if _, err := c.Provider(short); !errors.Is(err, oidcrp.ErrUnavailable) {
		t.Errorf("a caller that gives up: %v, want ErrUnavailable", err)
	}
	wg.Wait()
	if n := op.DiscoveryHits(); n != 1 {
		t.Errorf("%d discovery fetches for 11 concurrent callers, want 1", n)
	}

	// Warm ends with its context.
	op.SetDown(true)
	c = newClient(t, op)
	stop, cancelStop := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancelStop() }()
	c.Warm(stop)
}

// TestSharedWaitersSeeTheFailure: callers that waited for a failing
// discovery get its error, not a provider.
func TestSharedWaitersSeeTheFailure(t *testing.T) {
	op := hostileop.Start(t)
	op.SetIssuer(op.URL + "/other")
	op.Set(hostileop.Behavior{DiscoveryDelay: 200 * time.Millisecond})
	c := newClient(t, op, func(cfg *oidcrp.Config) { cfg.Issuer = op.URL })
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			var mismatch *oidcrp.IssuerMismatchError
			if _, err := c.Provider(context.Background()); !errors.As(err, &mismatch) {
				t.Errorf("%v, want the mismatch", err)
			}
		})
	}
	wg.Wait()
}

// TestAnswersBounded: an answer larger than MaxAnswerBytes fails instead
// of being read whole or cut; one of exactly that size is read.
func TestAnswersBounded(t *testing.T) {
	var size int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pad := size - len(`{"issuer":"","x":""}`) - len("http://"+r.Host)
		_, _ = w.Write([]byte(`{"issuer":"http://` + r.Host + `","x":"` + strings.Repeat("a", pad) + `"}`))
	}))
	defer srv.Close()
	var seen outcomes
	for _, tc := range []struct {
		size     int
		tooLarge bool
	}{{oidcrp.MaxAnswerBytes + 1, true}, {oidcrp.MaxAnswerBytes, false}} {
		size = tc.size
		c := oidcrp.New(context.Background(), oidcrp.Config{Issuer: srv.URL, ClientID: "c", OnDiscovery: seen.record})
		_, err := c.Provider(context.Background())
		errs := seen.all()
		last := errs[len(errs)-1]
		// go-oidc formats the body's error with %v: compare the text.
		tooLarge := last != nil && strings.Contains(last.Error(), oidcrp.ErrAnswerTooLarge.Error())
		var invalid *oidcrp.DiscoveryError
		// Within the limit the document is read whole, and refused for
		// what it lacks.
		if tooLarge != tc.tooLarge || (!tc.tooLarge && !errors.As(err, &invalid)) {
			t.Errorf("%d bytes: %v (%v), too large %v, want %v", tc.size, err, last, tooLarge, tc.tooLarge)
		}
	}
}

// TestErrorReason: an *Error reads as its reason and wraps its cause.
func TestErrorReason(t *testing.T) {
	cause := errors.New("cause")
	err := error(&oidcrp.Error{Reason: oidcrp.ReasonNonce, Err: cause})
	if oidcrp.ReasonOf(err) != oidcrp.ReasonNonce || !errors.Is(err, cause) || err.Error() != "oidcrp: nonce: cause" {
		t.Errorf("%v", err)
	}
	if oidcrp.ReasonOf(cause) != "" || (&oidcrp.Error{Reason: oidcrp.ReasonEvent}).Error() != "oidcrp: event" {
		t.Error("ReasonOf or Error of a bare reason")
	}
}
