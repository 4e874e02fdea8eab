package k1dev

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// Lockout policy for the second step.
const (
	maxCodeFailures = 5
	lockDuration    = time.Minute
	loginTxLifetime = 10 * time.Minute
)

// loginTx is a login between the password step and the code step.
type loginTx struct {
	authRequestID string // set when the login serves an OIDC auth request
	returnTo      string // else: the local path to go to afterwards
	username      string // set once the password step succeeded
	created       time.Time
}

// loginTarget is where a login continues: an auth request or a local path.
type loginTarget struct {
	AuthRequestID string
	Return        string
}

// handleLogin shows step one (username, company, password).
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	t := loginTarget{AuthRequestID: r.URL.Query().Get("authRequestID"), Return: safeReturn(r.URL.Query().Get("return"))}
	username := ""
	if t.AuthRequestID != "" {
		ar, err := s.storage.request(t.AuthRequestID)
		if err != nil {
			s.renderError(w, r, http.StatusBadRequest, "This login request is unknown or has expired. Start again from the application.")
			return
		}
		if ar.Done() {
			http.Redirect(w, r, s.callbackURL(r, ar.id), http.StatusFound)
			return
		}
		username = s.usernameFromHint(ar.loginHint)
	} else if sessionFromContext(r.Context()) != nil {
		http.Redirect(w, r, t.Return, http.StatusFound)
		return
	}
	s.render(w, r, http.StatusOK, "login", map[string]any{"Target": t, "Username": username})
}

// handlePassword checks step one and moves on to the code step.
func (s *Server) handlePassword(w http.ResponseWriter, r *http.Request) {
	t := loginTarget{AuthRequestID: r.PostFormValue("authRequestID"), Return: safeReturn(r.PostFormValue("return"))}
	username := strings.TrimSpace(r.PostFormValue("username"))
	company := strings.TrimSpace(r.PostFormValue("company"))
	password := r.PostFormValue("password")
	fail := func(msg string) {
		s.render(w, r, http.StatusUnauthorized, "login", map[string]any{"Target": t, "Username": username, "Company": company, "Error": msg})
	}
	u := s.cfg.user(username)
	if u == nil || !strings.EqualFold(u.Company, company) || subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) != 1 {
		slog.Info("k1dev: login refused: wrong username, company or password", "username", username)
		fail("Wrong username, company or password.")
		return
	}
	if s.sessions.isDisabled(u.Subject()) {
		slog.Info("k1dev: login refused: user disabled", "username", username)
		fail("This account is disabled.")
		return
	}
	if s.locked(username) {
		fail("Too many wrong codes: this account is locked for a minute.")
		return
	}
	tx := &loginTx{authRequestID: t.AuthRequestID, returnTo: t.Return, username: u.Username, created: time.Now()}
	id := randomID()
	s.mu.Lock()
	s.loginTxs[id] = tx
	s.mu.Unlock()
	http.Redirect(w, r, "/login/code?tx="+url.QueryEscape(id), http.StatusSeeOther)
}

// handleCodeForm shows step two (the authenticator code).
func (s *Server) handleCodeForm(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("tx")
	if s.loginTx(id) == nil {
		s.renderError(w, r, http.StatusBadRequest, "This login has expired. Please log in again.")
		return
	}
	s.render(w, r, http.StatusOK, "code", map[string]any{"Tx": id})
}

// handleCode checks step two and finishes the login.
func (s *Server) handleCode(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("tx")
	tx := s.loginTx(id)
	if tx == nil {
		s.renderError(w, r, http.StatusBadRequest, "This login has expired. Please log in again.")
		return
	}
	fail := func(msg string) {
		s.render(w, r, http.StatusUnauthorized, "code", map[string]any{"Tx": id, "Error": msg})
	}
	if s.locked(tx.username) {
		fail("Too many wrong codes: this account is locked for a minute.")
		return
	}
	u := s.cfg.user(tx.username)
	if !validCode(u.TOTPSecret, strings.TrimSpace(r.PostFormValue("code")), time.Now()) {
		if s.codeFailed(tx.username) {
			slog.Warn("k1dev: account locked after wrong codes", "username", tx.username)
			fail("Too many wrong codes: this account is locked for a minute.")
			return
		}
		slog.Info("k1dev: login refused: wrong code", "username", tx.username)
		fail("Wrong code. Enter the 6-digit code of your authenticator app.")
		return
	}
	s.mu.Lock()
	delete(s.loginTxs, id)
	delete(s.failures, tx.username)
	s.mu.Unlock()

	sess := s.startSession(w, r, tx.username)
	slog.Info("k1dev: login", "username", tx.username)
	if tx.authRequestID == "" {
		http.Redirect(w, r, tx.returnTo, http.StatusSeeOther)
		return
	}
	ar, err := s.storage.request(tx.authRequestID)
	if err != nil {
		s.renderError(w, r, http.StatusBadRequest, "This login request has expired. Start again from the application.")
		return
	}
	s.storage.complete(ar, sess)
	http.Redirect(w, r, s.callbackURL(r, ar.id), http.StatusSeeOther)
}

// loginTx returns a live login transaction, or nil.
func (s *Server) loginTx(id string) *loginTx {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := s.loginTxs[id]
	if tx == nil || time.Since(tx.created) > loginTxLifetime {
		return nil
	}
	return tx
}

// locked reports whether username is locked out.
func (s *Server) locked(username string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Now().Before(s.lockedUntil[username])
}

// codeFailed counts a wrong code and reports whether it locked the user.
func (s *Server) codeFailed(username string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[username]++
	if s.failures[username] < maxCodeFailures {
		return false
	}
	delete(s.failures, username)
	s.lockedUntil[username] = time.Now().Add(lockDuration)
	return true
}

// usernameFromHint maps a login_hint (username or email) to a username.
func (s *Server) usernameFromHint(hint string) string {
	for _, u := range s.cfg.Users {
		if strings.EqualFold(u.Email, hint) {
			return u.Username
		}
	}
	return hint
}

// callbackURL is the op's authorize callback for an auth request.
func (s *Server) callbackURL(r *http.Request, id string) string {
	return op.AuthCallbackURL(s.provider)(op.ContextWithIssuer(r.Context(), s.issuer), id)
}

// safeReturn keeps a return path local ("/" when it is not).
func safeReturn(p string) string {
	if p == "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, `/\`) || strings.ContainsAny(p, "\r\n") {
		return "/"
	}
	return p
}
