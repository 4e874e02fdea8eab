package bms

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// IdentityHeaders are the headers the proxy sends upstream, in the order the
// dashboard shows them.
var IdentityHeaders = []string{
	"X-K1-Email",
	"X-K1-Subject",
	"X-BMS-User",
	"X-BMS-Tenant",
	"X-BMS-Roles",
	"X-K1-Assertion",
}

// Auth modes, as shown on the dashboard and in /api/whoami-headers.
const (
	// AuthHeaders means the request carried X-BMS-User and X-BMS-Tenant.
	AuthHeaders = "headers"
	// AuthNative means the request carried a valid BMSSESSION cookie.
	AuthNative = "native session"
	// AuthNone means the request is not logged in.
	AuthNone = "none"
)

// server is the demo BMS.
type server struct {
	cfg      Config
	sessions sessions
	created  newTickets
	mux      *http.ServeMux
}

// New returns the demo BMS for the tenants and accounts of cfg.
func New(cfg Config) http.Handler {
	s := &server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /login", s.handleLoginForm)
	s.mux.HandleFunc("POST /login", s.handleLogin)
	s.mux.HandleFunc("GET /logout", s.handleLogout)
	s.mux.HandleFunc("POST /logout", s.handleLogout)
	s.mux.HandleFunc("GET /{$}", s.handleRoot)
	s.mux.HandleFunc("GET /dashboard", s.needLogin(s.handleDashboard))
	s.mux.HandleFunc("GET /tickets", s.needLogin(s.handleTickets))
	s.mux.HandleFunc("GET /tickets/new", s.needLogin(s.handleNewTicketForm)) // newticket.go
	s.mux.HandleFunc("POST /tickets", s.needLogin(s.handleCreateTicket))
	s.mux.HandleFunc("GET /admin/integrations", s.needLogin(s.handleIntegrations))
	s.mux.HandleFunc("GET /api/whoami-headers", s.handleWhoamiHeaders)
	s.mux.HandleFunc("GET /api/tickets/count", s.handleTicketCount) // live.go
	s.mux.HandleFunc("GET /api/tickets/feed", s.handleTicketFeed)
	s.mux.Handle("GET /static/{file}", http.FileServerFS(staticFS))
	s.mux.HandleFunc("/", s.handleNotFound)
	return s
}

// ServeHTTP implements http.Handler.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		w.Header().Set("Cache-Control", "no-store")
	}
	s.mux.ServeHTTP(w, r)
}

// identity is who a request is logged in as.
type identity struct {
	User       string
	Tenant     string
	TenantName string
	Roles      []string
	Mode       string // AuthHeaders or AuthNative
}

// isAdmin reports whether the identity has the admin role.
func (id *identity) isAdmin() bool { return slices.Contains(id.Roles, "admin") }

// identify returns who r is logged in as, or nil. Trusted headers win over
// the native session.
func (s *server) identify(r *http.Request) *identity {
	if user, tenant := r.Header.Get("X-BMS-User"), r.Header.Get("X-BMS-Tenant"); user != "" && tenant != "" {
		return &identity{
			User:       user,
			Tenant:     tenant,
			TenantName: s.cfg.tenantName(tenant),
			Roles:      splitRoles(r.Header.Get("X-BMS-Roles")),
			Mode:       AuthHeaders,
		}
	}
	if sess := s.sessions.get(sessionID(r)); sess != nil {
		return &identity{
			User:       sess.username,
			Tenant:     sess.tenant,
			TenantName: s.cfg.tenantName(sess.tenant),
			Roles:      sess.roles,
			Mode:       AuthNative,
		}
	}
	return nil
}

// splitRoles splits a comma-separated X-BMS-Roles value.
func splitRoles(v string) []string {
	var roles []string
	for r := range strings.SplitSeq(v, ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	return roles
}

// needLogin wraps a page handler: without a logged-in user it redirects to
// the login page.
func (s *server) needLogin(h func(http.ResponseWriter, *http.Request, *identity)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := s.identify(r)
		if id == nil {
			http.Redirect(w, r, "/login", http.StatusFound)
			return
		}
		h(w, r, id)
	}
}

func (s *server) handleRoot(w http.ResponseWriter, r *http.Request) {
	if s.identify(r) == nil {
		http.Redirect(w, r, "/login", http.StatusFound)
		return
	}
	http.Redirect(w, r, "/dashboard", http.StatusFound)
}

func (s *server) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "login", pageData{Title: "Log in"})
}

func (s *server) handleLogin(w http.ResponseWriter, r *http.Request) {
	username := strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	acct := s.cfg.account(username)
	if acct == nil || subtle.ConstantTimeCompare([]byte(acct.Password), []byte(password)) != 1 {
		s.render(w, http.StatusUnauthorized, "login", pageData{
			Title:    "Log in",
			Username: username,
			Error:    "The username or password is incorrect.",
		})
		return
	}
	if old := sessionID(r); old != "" { // no session fixation
		s.sessions.delete(old)
	}
	id := s.sessions.create(&session{
		username: acct.Username,
		tenant:   acct.Tenant,
		roles:    slices.Clone(acct.Roles),
		expires:  time.Now().Add(sessionLifetime),
	})
	setSessionCookie(w, r, id)
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

func (s *server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if id := sessionID(r); id != "" {
		s.sessions.delete(id)
	}
	expireSessionCookie(w, r)
	http.Redirect(w, r, "/login", http.StatusFound)
}

func (s *server) handleDashboard(w http.ResponseWriter, r *http.Request, id *identity) {
	s.render(w, http.StatusOK, "dashboard", pageData{
		Title:    "Dashboard",
		Active:   "dashboard",
		Identity: id,
		Headers:  headerRows(r.Header),
	})
}

func (s *server) handleTickets(w http.ResponseWriter, r *http.Request, id *identity) {
	s.render(w, http.StatusOK, "tickets", pageData{
		Title:    "Service Desk: Tickets",
		Active:   "tickets",
		Identity: id,
		Tickets:  ticketsFor(id.Tenant),
		Created:  s.created.of(id.Tenant),
	})
}

func (s *server) handleIntegrations(w http.ResponseWriter, r *http.Request, id *identity) {
	if !id.isAdmin() {
		s.render(w, http.StatusForbidden, "forbidden", pageData{Title: "Access denied", Active: "admin", Identity: id})
		return
	}
	s.render(w, http.StatusOK, "integrations", pageData{Title: "Integrations: KaseyaOne", Active: "admin", Identity: id})
}

func (s *server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusNotFound, "notfound", pageData{Title: "Page not found", Identity: s.identify(r)})
}

// WhoamiHeaders is the JSON body of /api/whoami-headers.
type WhoamiHeaders struct {
	// Auth is how the request is logged in: "headers", "native session" or
	// "none".
	Auth string `json:"auth"`
	// User, Tenant and Roles are the identity the BMS sees (empty for "none").
	User   string   `json:"user,omitempty"`
	Tenant string   `json:"tenant,omitempty"`
	Roles  []string `json:"roles,omitempty"`
	// Headers maps each identity header received (canonical name, see
	// IdentityHeaders) to its first value.
	Headers map[string]string `json:"headers"`
	// Raw lists every received header line whose name, lower-cased and with
	// "_" read as "-", is an identity header: duplicates and spellings such as
	// X_BMS_User show up here, so tests can prove none got through.
	Raw []HeaderLine `json:"raw"`
	// Cookies are the names of the cookies received.
	Cookies []string `json:"cookies"`
}

// HeaderLine is one received header line.
type HeaderLine struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (s *server) handleWhoamiHeaders(w http.ResponseWriter, r *http.Request) {
	out := WhoamiHeaders{Auth: AuthNone, Headers: map[string]string{}, Raw: []HeaderLine{}, Cookies: []string{}}
	if id := s.identify(r); id != nil {
		out.Auth, out.User, out.Tenant, out.Roles = id.Mode, id.User, id.Tenant, id.Roles
	}
	for _, name := range IdentityHeaders {
		if v := r.Header.Values(name); len(v) > 0 {
			out.Headers[name] = v[0]
		}
	}
	for name, values := range r.Header {
		if isIdentityHeader(name) {
			for _, v := range values {
				out.Raw = append(out.Raw, HeaderLine{Name: name, Value: v})
			}
		}
	}
	slices.SortFunc(out.Raw, func(a, b HeaderLine) int { return strings.Compare(a.Name, b.Name) })
	for _, c := range r.Cookies() {
		out.Cookies = append(out.Cookies, c.Name)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

// isIdentityHeader reports whether a header name, read loosely (any case,
// "_" for "-"), is one of IdentityHeaders.
func isIdentityHeader(name string) bool {
	n := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	for _, h := range IdentityHeaders {
		if n == strings.ToLower(h) {
			return true
		}
	}
	return false
}
