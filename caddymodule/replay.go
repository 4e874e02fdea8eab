package caddymodule

import (
	"bytes"
	"context"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/securecookie"
	"go.uber.org/zap"

	"github.com/k1sso/k1sso/sessioncookie"
)

// A form posted without a valid session is kept and sent again after the
// K1 login, so the user loses nothing when the session ended while they
// were typing. Only same-origin urlencoded forms of at most maxKeptForm
// bytes are kept, for formTTL, in the store under a random ID that only the
// browser's form cookie names. A form is replayed at most once.
const (
	formCookie   = "k1sso-form"
	maxKeptForm  = 64 << 10
	formTTL      = 10 * time.Minute
	replayPath   = prefix + "replay"
	maxFormsKept = 1000 // per instance and formTTL: what unauthenticated posts can fill in the store
)

var replayTmpl = template.Must(template.ParseFS(pageFS, "pages/replay.html", "pages/layout.html"))

// keptForm is what the store holds of a kept form, encrypted.
type keptForm struct {
	URL    string `json:"u"` // local request URI
	Body   string `json:"b"` // urlencoded, as posted
	Issued int64  `json:"i"`
}

// formBudget bounds the forms one instance keeps at a time: a ring of the
// expiry times of the last maxFormsKept forms. A full ring whose oldest
// form has not expired refuses to keep more.
type formBudget struct {
	mu   sync.Mutex
	exp  [maxFormsKept]int64
	next int
}

var keptForms formBudget

func (b *formBudget) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.exp[b.next] > now.Unix() {
		return false
	}
	b.exp[b.next] = now.Add(formTTL).Unix()
	b.next = (b.next + 1) % maxFormsKept
	return true
}

// formCodecs encrypt kept forms in the store, with keys of their own.
func (h *Handler) formCodecs() []securecookie.Codec {
	d := cookieDeployment(h.cfg)
	var cs []securecookie.Codec
	for _, secret := range h.cfg.cookieKeys {
		sc := newCodec(secret, d, "kept form", formTTL)
		sc.(*securecookie.SecureCookie).MaxLength(2*maxKeptForm + 4096)
		cs = append(cs, sc)
	}
	return cs
}

// sameOriginPost reports whether the browser says the request comes from
// a page of this site: Sec-Fetch-Site same-origin where it is sent, and an
// Origin equal to this site's. A request with neither is not trusted.
func (h *Handler) sameOriginPost(r *http.Request, o origin) bool {
	site, origin := r.Header.Get("Sec-Fetch-Site"), r.Header.Get("Origin")
	if site == "" && origin == "" {
		return false
	}
	if site != "" && site != "same-origin" {
		return false
	}
	if origin != "" {
		if !strings.EqualFold(origin, o.scheme+"://"+o.host) {
			return false
		}
	}
	return true
}

// keepEndedForm is keepForm in optional mode, where a post without a valid
// session is BMS's to answer (it may have its own login) unless it is the
// case the feature exists for: a form the user typed while their K1 session
// here ran out. That is a post carrying k1sso's own cookie of a session
// that is over: idle (sessionIdle), or past its end (the cookie decodes
// under this deployment's keys, only its time is up; a browser sends it
// past the end when session_lifetime was shortened or its clock is
// behind). A revoked session is kept by serveRevoked in both modes. A
// cookie that does not decode proves nothing, so garbage or a forgery
// leaves the post to BMS; so do BMS's login page and public paths, a post
// that carries BMS's own session cookie (upstream_cookies: BMS has a
// session to judge it by), and, through keepForm, anything not a
// same-origin form. It reports whether it answered the request; when it
// did not, the request is as it came, body included.
func (h *Handler) keepEndedForm(w http.ResponseWriter, r *http.Request, rq *request) (bool, error) {
	if r.Method != http.MethodPost || h.Enforce || h.isPublic(r) || !h.sessionEnded(r, rq) {
		return false, nil
	}
	for _, name := range h.UpstreamCookies {
		if _, err := r.Cookie(name); err == nil {
			return false, nil
		}
	}
	return h.keepForm(w, r, rq)
}

// sessionEnded reports whether the request carries k1sso's cookie of a
// session that went idle or is past its end.
func (h *Handler) sessionEnded(r *http.Request, rq *request) bool {
	switch rq.state {
	case sessionIdle:
		return true
	case sessionNone:
	default:
		return false
	}
	raw := sessioncookie.ReadChunked(r, sessioncookie.Name(sessionCookie, rq.secure))
	if raw == "" {
		return false
	}
	var sess session
	if h.shared.codecs.session.Decode(sessionCookie, raw, &sess) != nil || sess.ID == "" || sess.Subject == "" {
		return false
	}
	return rq.now.Unix() >= h.shared.ends(sess.Issued, sess.Expires)
}

// keepForm keeps a form posted without a valid session and sends the
// browser to the K1 login, which comes back to the replay page. It reports
// whether it answered the request; a post it does not keep (cross-site,
// too large, not a form, the budget spent, the store unreachable) is left
// to the caller (a 401 in enforce mode, BMS in optional mode) with its
// body as it came.
func (h *Handler) keepForm(w http.ResponseWriter, r *http.Request, rq *request) (bool, error) {
	if r.Method != http.MethodPost || !h.sameOriginPost(r, rq.origin) {
		return false, nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" || r.ContentLength > maxKeptForm {
		return false, nil
	}
	uri := r.URL.RequestURI()
	if !isLocalPath(uri) {
		return false, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxKeptForm+1))
	// Not kept: the request goes on with the body it came with.
	unread := func() (bool, error) {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), r.Body), r.Body}
		return false, nil
	}
	if err != nil || len(b) > maxKeptForm {
		return unread()
	}
	if _, err := url.ParseQuery(string(b)); err != nil {
		return unread()
	}
	now := time.Now()
	if !keptForms.take(now) {
		h.logger.Warn("a form posted without a session was not kept: too many kept forms", zap.Int("limit", maxFormsKept))
		return unread()
	}
	v, err := securecookie.EncodeMulti(formCookie, &keptForm{URL: uri, Body: string(b), Issued: now.Unix()}, h.formCodecs()...)
	if err != nil {
		return unread()
	}
	id := randomID(24)
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	if err := h.shared.store.Put(ctx, formKey(id), []byte(v), formTTL); err != nil {
		h.logger.Warn("keeping a form posted without a session failed", zap.Error(err))
		return unread()
	}
	secure := rq.secure
	http.SetCookie(w, sessioncookie.New(sessioncookie.Name(formCookie, secure), id, secure, formTTL))
	target := prefix + "login?rd=" + url.QueryEscape(replayPath)
	if rq.state == sessionNoTenant {
		target = prefix + "tenant?rd=" + url.QueryEscape(replayPath)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
	return true, nil
}

func formKey(id string) string { return recheckKey("form", id) }

// replayField is one field of a kept form, in the order it was posted.
type replayField struct{ Name, Value string }

// serveReplay answers GET /.k1sso/replay after the login: a page that
// posts the kept form again to its URL (by script, or with its button).
func (h *Handler) serveReplay(w http.ResponseWriter, r *http.Request, rq *request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return h.methodNotAllowed(w, r, "GET, HEAD")
	}
	secure := rq.secure
	id := sessioncookie.Value(r, sessioncookie.Name(formCookie, secure))
	gone := pageData{Title: "No form to send", Message: "There is no form waiting to be sent again: it was sent already, or it was kept too long.",
		Links: []pageLink{{Href: h.cfg.landingPage, Text: "Continue"}}}
	if id == "" {
		return h.refuse(w, r, http.StatusNotFound, gone)
	}
	if rq.active() == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, prefix+"login?rd="+url.QueryEscape(replayPath), http.StatusFound)
		return nil
	}
	if r.Method == http.MethodHead {
		h.page(w, r, http.StatusOK, pageData{Title: "Sending your form again…"})
		return nil
	}
	sessioncookie.Expire(w, sessioncookie.Name(formCookie, secure), secure)
	claimed, err := h.shared.used.claim(r.Context(), "form:"+id, formTTL)
	if err != nil {
		return h.refuse(w, r, http.StatusServiceUnavailable, pageData{Title: "Form not sent", Message: "Your form could not be sent again right now. Please try again in a moment.",
			Links: []pageLink{{Href: r.URL.RequestURI(), Text: "Try again"}}})
	}
	if !claimed {
		return h.refuse(w, r, http.StatusNotFound, gone)
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	raw, err := h.shared.store.Get(ctx, formKey(id))
	var kf keptForm
	if err != nil || securecookie.DecodeMulti(formCookie, string(raw), &kf, h.formCodecs()...) != nil ||
		!isLocalPath(kf.URL) || time.Since(time.Unix(kf.Issued, 0)) > formTTL {
		return h.refuse(w, r, http.StatusNotFound, gone)
	}
	_ = h.shared.store.Put(ctx, formKey(id), nil, time.Second)
	fields := formFields(kf.Body)
	h.logger.Info("kept form sent again", zap.String("path", strings.SplitN(kf.URL, "?", 2)[0]), zap.Int("fields", len(fields)))
	nonce := randomID(16)
	h.replayHeaders(w, nonce)
	w.WriteHeader(http.StatusOK)
	return replayTmpl.Execute(w, struct {
		pageData
		Fields []replayField
	}{pageData{Title: "Sending your form again…", Nonce: nonce, Action: kf.URL}, fields})
}

// formFields splits an urlencoded body into its fields, keeping their
// order and repeated names.
func formFields(body string) []replayField {
	var out []replayField
	for part := range strings.SplitSeq(body, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, replayField{Name: k, Value: v})
	}
	return out
}

// replayHeaders are pageHeaders plus the one script of the replay page,
// allowed by its nonce, and a form that may post only to this site.
func (h *Handler) replayHeaders(w http.ResponseWriter, nonce string) {
	h.pageHeaders(w, nonce)
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; script-src 'nonce-"+nonce+
		"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
}
