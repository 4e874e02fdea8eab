package k1dev

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// authRequest is one authorization request, from /authorize to the token
// exchange.
type authRequest struct {
	id          string
	created     time.Time
	clientID    string
	redirectURI string
	state       string
	nonce       string
	scopes      []string
	prompt      []string
	maxAge      *time.Duration
	loginHint   string
	challenge   *oidc.CodeChallenge
	respType    oidc.ResponseType
	respMode    oidc.ResponseMode

	// set when the user has authenticated (done)
	done     bool
	subject  string
	username string
	authTime time.Time
	sid      string
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return []string{"pwd", "otp"} }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.respType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.respMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.done }

// accessToken is an opaque bearer token kept in memory.
type accessToken struct {
	subject  string
	clientID string
	scopes   []string
	expires  time.Time
}

// storage implements op.Storage in memory: it owns the authorization
// requests, codes, access and refresh tokens. Users and clients come from
// the (read-only) config, keys from the key ring; the browser sessions
// belong to the Server, and the storage only asks them whether a user is
// disabled or a K1 session lives, and records the client logins it
// completes. Ending sessions at end_session is the Server's (opStorage).
type storage struct {
	cfg      *Config
	keys     *keyRing
	sessions *browserSessions

	mu       sync.Mutex
	requests map[string]*authRequest
	codes    map[string]string // code → auth request id
	tokens   map[string]*accessToken
	refresh  map[string]*refreshToken // see refresh.go
}

var (
	_ op.Storage                   = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
)

func newStorage(cfg *Config, keys *keyRing, sessions *browserSessions) *storage {
	return &storage{
		cfg:      cfg,
		keys:     keys,
		sessions: sessions,
		requests: map[string]*authRequest{},
		codes:    map[string]string{},
		tokens:   map[string]*accessToken{},
		refresh:  map[string]*refreshToken{},
	}
}

// errNotFound is returned for unknown requests, codes and tokens.
var errNotFound = errors.New("not found")

// CreateAuthRequest stores a validated authorization request. With a live
// K1 session in the request context (and no prompt=login, max_age not
// exceeded) the request is completed at once; prompt=none without such a
// session answers login_required.
func (s *storage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	ar := &authRequest{
		id:          randomID(),
		created:     time.Now(),
		clientID:    req.ClientID,
		redirectURI: req.RedirectURI,
		state:       req.State,
		nonce:       req.Nonce,
		scopes:      req.Scopes,
		prompt:      req.Prompt,
		loginHint:   req.LoginHint,
		respType:    req.ResponseType,
		respMode:    req.ResponseMode,
	}
	if req.MaxAge != nil {
		d := time.Duration(*req.MaxAge) * time.Second
		ar.maxAge = &d
	}
	if req.CodeChallenge != "" {
		ar.challenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	promptNone, promptLogin := false, false
	for _, p := range req.Prompt {
		promptNone = promptNone || p == oidc.PromptNone
		promptLogin = promptLogin || p == oidc.PromptLogin
	}
	sess := sessionFromContext(ctx)
	usable := sess != nil && !promptLogin && s.sessions.fresh(sess, ar.maxAge, time.Now())
	if promptNone && !usable {
		return nil, oidc.ErrLoginRequired()
	}
	if usable {
		s.complete(ar, sess)
	}
	s.mu.Lock()
	s.requests[ar.id] = ar
	s.mu.Unlock()
	return ar, nil
}

// complete marks ar as authenticated by sess and records the client login
// in the session. The session learns of the client first: a logout between
// the two steps then still reaches the client, as before the request was
// completed.
func (s *storage) complete(ar *authRequest, sess *session) {
	authTime := s.sessions.recordLogin(sess, ar.clientID, ar.redirectURI)
	// The op reads ar after fetching it under s.mu; write under it too.
	s.mu.Lock()
	defer s.mu.Unlock()
	ar.done = true
	ar.username = sess.username
	ar.subject = "k1|" + sess.username
	ar.authTime = authTime
	ar.sid = sess.sid
}

func (s *storage) request(id string) (*authRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.requests[id]
	if !ok || time.Since(ar.created) > 30*time.Minute {
		return nil, fmt.Errorf("auth request: %w", errNotFound)
	}
	return ar, nil
}

// AuthRequestByID implements op.Storage.
func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	return s.request(id)
}

// AuthRequestByCode implements op.Storage.
func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("code: %w", errNotFound)
	}
	return s.request(id)
}

// SaveAuthCode implements op.Storage.
func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest implements op.Storage; it also makes the code unusable.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

// CreateAccessToken implements op.Storage.
func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	clientID := ""
	if ar, ok := req.(*authRequest); ok {
		clientID = ar.clientID
	}
	t := &accessToken{subject: req.GetSubject(), clientID: clientID, scopes: req.GetScopes(), expires: time.Now().Add(time.Hour)}
	id := randomID()
	s.mu.Lock()
	s.tokens[id] = t
	s.mu.Unlock()
	return id, t.expires, nil
}

// TerminateSession implements op.Storage (unused: the op prefers
// opStorage.TerminateSessionFromRequest).
func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

// RevokeToken implements op.Storage.
func (s *storage) RevokeToken(_ context.Context, token, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[token]; ok && t.clientID == clientID {
		delete(s.tokens, token)
	}
	return nil
}

// SigningKey implements op.Storage: the newest key.
func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	return s.keys.current(), nil
}

// SignatureAlgorithms implements op.Storage.
func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

// KeySet implements op.Storage: every key ever used, newest first.
func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return s.keys.public(), nil
}

// GetClientByClientID implements op.Storage.
func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c := s.cfg.client(id)
	if c == nil {
		return nil, fmt.Errorf("client %q: %w", id, errNotFound)
	}
	return opClient{c}, nil
}

// AuthorizeClientIDSecret implements op.Storage.
func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c := s.cfg.client(id)
	if c == nil || subtle.ConstantTimeCompare([]byte(c.Secret), []byte(secret)) != 1 {
		return errors.New("wrong client id or secret")
	}
	return nil
}

// SetUserinfoFromScopes implements op.Storage (deprecated; see
// SetUserinfoFromRequest).
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest puts the user's claims into the ID token.
func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.setUserinfo(info, req.GetSubject(), scopes); err != nil {
		return err
	}
	if sid := requestSID(req); sid != "" {
		info.AppendClaims("sid", sid)
	}
	return nil
}

// SetUserinfoFromToken implements op.Storage (the userinfo endpoint).
func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	s.mu.Lock()
	t, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(t.expires) {
		return errors.New("token is invalid or expired")
	}
	if s.sessions.isDisabled(t.subject) {
		return errors.New("user is disabled")
	}
	return s.setUserinfo(info, t.subject, t.scopes)
}

// setUserinfo fills the claims of subject for scopes.
func (s *storage) setUserinfo(info *oidc.UserInfo, subject string, scopes []string) error {
	u := s.cfg.userBySubject(subject)
	if u == nil {
		return errors.New("user not found")
	}
	info.Subject = u.Subject()
	for _, scope := range scopes {
		switch scope {
		case oidc.ScopeEmail:
			info.Email = u.Email
			info.EmailVerified = true
		case oidc.ScopeProfile:
			info.Name = u.Name
			info.PreferredUsername = u.Username
		}
	}
	info.AppendClaims("k1_company", u.Company)
	return nil
}

// SetIntrospectionFromToken implements op.Storage.
func (s *storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, _, clientID string) error {
	s.mu.Lock()
	t, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || time.Now().After(t.expires) || t.clientID != clientID {
		return errors.New("token is invalid")
	}
	info := new(oidc.UserInfo)
	if err := s.setUserinfo(info, t.subject, t.scopes); err != nil {
		return err
	}
	resp.SetUserInfo(info)
	resp.Scope = t.scopes
	resp.ClientID = t.clientID
	resp.Expiration = oidc.FromTime(t.expires)
	return nil
}

// GetPrivateClaimsFromScopes implements op.Storage.
func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID implements op.Storage (no JWT profile clients).
func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("jwt profile not supported")
}

// ValidateJWTProfileScopes implements op.Storage.
func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("jwt profile not supported")
}

// Health implements op.Storage.
func (s *storage) Health(context.Context) error { return nil }
