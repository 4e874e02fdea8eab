package k1dev

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// launchURL is where choosing tenant of module sends user: the module
// client's initiate_login_uri with iss, login_hint (the email),
// target_link_uri (the landing page, else the module root) and tenant.
func (s *Server) launchURL(u *User, moduleName, tenant string) (string, error) {
	m := s.cfg.module(moduleName)
	if m == nil {
		return "", fmt.Errorf("unknown module %q", moduleName)
	}
	if !hasTenant(u, moduleName, tenant) {
		return "", fmt.Errorf("no tenant %q of %s for %s", tenant, moduleName, u.Username)
	}
	c := s.cfg.client(m.ClientID)
	if c == nil || c.InitiateLoginURI == "" {
		return "", fmt.Errorf("module %s has no initiate_login_uri", moduleName)
	}
	target, err := url.Parse(c.InitiateLoginURI)
	if err != nil {
		return "", fmt.Errorf("parsing initiate_login_uri: %w", err)
	}
	q := target.Query()
	q.Set("iss", s.issuer)
	q.Set("login_hint", u.Email)
	q.Set("target_link_uri", s.targetLink(m))
	q.Set("tenant", tenant)
	target.RawQuery = q.Encode()
	return target.String(), nil
}

// targetLink resolves the module's landing page: an absolute URL as is, a
// path under the module's base URL; no landing page means base URL + "/".
func (s *Server) targetLink(m *Module) string {
	s.mu.Lock()
	lp := m.LandingPage
	s.mu.Unlock()
	base := strings.TrimSuffix(m.BaseURL, "/")
	if u, err := url.Parse(lp); err == nil && u.IsAbs() {
		return lp
	}
	return base + "/" + strings.TrimPrefix(lp, "/")
}

// hasTenant reports whether u may launch tenant of module.
func hasTenant(u *User, module, tenant string) bool {
	for _, t := range u.Tenants[module] {
		if t.ID == tenant {
			return true
		}
	}
	return false
}

// handleLaunch sends the browser to the module (My Modules, app launcher).
func (s *Server) handleLaunch(w http.ResponseWriter, r *http.Request) {
	u := s.cfg.user(sessionFromContext(r.Context()).username)
	target, err := s.launchURL(u, r.PathValue("module"), r.PathValue("tenant"))
	if err != nil {
		s.renderError(w, r, http.StatusNotFound, "This module or tenant is not available to you.")
		return
	}
	slog.Info("k1dev: launch", "username", u.Username, "module", r.PathValue("module"), "tenant", r.PathValue("tenant"))
	http.Redirect(w, r, target, http.StatusFound)
}

// SetLandingPage sets the Landing Page of module (Admin Settings → Module
// URLs): an absolute http(s) URL, a path (relative to the module's base
// URL), or "" for the module root. The next launch uses it.
func (s *Server) SetLandingPage(module, landingPage string) error {
	m := s.cfg.module(module)
	if m == nil {
		return fmt.Errorf("unknown module %q", module)
	}
	landingPage = strings.TrimSpace(landingPage)
	if err := checkLandingPage(landingPage); err != nil {
		return err
	}
	s.mu.Lock()
	m.LandingPage = landingPage
	s.mu.Unlock()
	return nil
}

// checkLandingPage accepts "", a path, or an absolute http(s) URL.
func checkLandingPage(lp string) error {
	if lp == "" {
		return nil
	}
	u, err := url.Parse(lp)
	if err != nil || strings.ContainsAny(lp, " \t\r\n\\") {
		return fmt.Errorf("landing page %q is not a URL or path", lp)
	}
	if u.IsAbs() {
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("landing page %q: need an http(s) URL or a path", lp)
		}
		return nil
	}
	if u.Host != "" || strings.HasPrefix(lp, "//") {
		return fmt.Errorf("landing page %q: need an http(s) URL or a path", lp)
	}
	return nil
}
