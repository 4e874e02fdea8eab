package k1dev

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages are the parsed templates, each with the shared layout.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"login", "code", "home", "modules", "tenants", "launcher", "admin", "module_urls", "logged_out", "error"} {
		out[name] = template.Must(template.ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}()

// moduleView is a module with the current user's tenants, for the pages.
type moduleView struct {
	Name    string
	Tenants []Tenant
}

// render writes page name with data plus the current user ("User").
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	if sess := sessionFromContext(r.Context()); sess != nil {
		data["User"] = s.cfg.user(sess.username)
		data["CSRF"] = sess.csrf
	}
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		slog.Error("k1dev: rendering page", "page", name, "err", err)
		http.Error(w, "rendering page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// renderError shows a readable error page.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "error", map[string]any{"Title": http.StatusText(status), "Error": msg})
}

// needSession sends browsers without a K1 session to the login page first.
func (s *Server) needSession(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if sessionFromContext(r.Context()) == nil {
			http.Redirect(w, r, "/login?return="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
			return
		}
		h(w, r)
	}
}

// currentUser is the user of the request's session (needSession ran).
func (s *Server) currentUser(r *http.Request) *User {
	return s.cfg.user(sessionFromContext(r.Context()).username)
}

// modulesOf lists every module with u's tenants in it.
func (s *Server) modulesOf(u *User) []moduleView {
	var out []moduleView
	for _, m := range s.cfg.Modules {
		out = append(out, moduleView{Name: m.Name, Tenants: u.Tenants[m.Name]})
	}
	return out
}

// handleHome is K1's landing page: My Modules and Overview.
func (s *Server) handleHome(w http.ResponseWriter, r *http.Request) {
	u := s.currentUser(r)
	s.render(w, r, http.StatusOK, "home", map[string]any{"Title": "Home", "Modules": s.modulesOf(u)})
}

// handleModules lists the modules (My Modules).
func (s *Server) handleModules(w http.ResponseWriter, r *http.Request) {
	u := s.currentUser(r)
	s.render(w, r, http.StatusOK, "modules", map[string]any{"Title": "My Modules", "Modules": s.modulesOf(u)})
}

// handleTenants lists the user's tenants of one module.
func (s *Server) handleTenants(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("module")
	if s.cfg.module(name) == nil {
		s.renderError(w, r, http.StatusNotFound, "There is no such module.")
		return
	}
	u := s.currentUser(r)
	s.render(w, r, http.StatusOK, "tenants", map[string]any{"Title": name, "Module": moduleView{Name: name, Tenants: u.Tenants[name]}})
}

// handleLauncher is the app launcher: every module with its tenants.
func (s *Server) handleLauncher(w http.ResponseWriter, r *http.Request) {
	u := s.currentUser(r)
	s.render(w, r, http.StatusOK, "launcher", map[string]any{"Title": "App Launcher", "Modules": s.modulesOf(u)})
}

// handleAdmin is Admin Settings.
func (s *Server) handleAdmin(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "admin", map[string]any{"Title": "Admin Settings"})
}

// moduleURLRow is one row of the Module URLs table.
type moduleURLRow struct {
	Name, BaseURL, LandingPage, Target string
}

// moduleURLRows snapshots the Module URLs table.
func (s *Server) moduleURLRows() []moduleURLRow {
	var rows []moduleURLRow
	for i := range s.cfg.Modules {
		m := &s.cfg.Modules[i]
		s.mu.Lock()
		lp := m.LandingPage
		s.mu.Unlock()
		rows = append(rows, moduleURLRow{Name: m.Name, BaseURL: m.BaseURL, LandingPage: lp, Target: s.targetLink(m)})
	}
	return rows
}

// handleModuleURLs shows Admin Settings → Module URLs.
func (s *Server) handleModuleURLs(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "module_urls", map[string]any{
		"Title": "Module URLs", "Rows": s.moduleURLRows(), "Saved": r.URL.Query().Get("saved"),
	})
}

// handleModuleURLsPost saves a Landing Page; company admins only, with the
// session's CSRF token.
func (s *Server) handleModuleURLsPost(w http.ResponseWriter, r *http.Request) {
	sess := sessionFromContext(r.Context())
	u := s.currentUser(r)
	if !u.Admin {
		s.renderError(w, r, http.StatusForbidden, "Only a company admin may change module URLs.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.csrf)) != 1 {
		s.renderError(w, r, http.StatusForbidden, "The form has expired. Reload the page and try again.")
		return
	}
	module := r.PostFormValue("module")
	if err := s.SetLandingPage(module, r.PostFormValue("landing_page")); err != nil {
		s.render(w, r, http.StatusBadRequest, "module_urls", map[string]any{
			"Title": "Module URLs", "Rows": s.moduleURLRows(), "Error": err.Error(),
		})
		return
	}
	slog.Info("k1dev: landing page changed", "username", u.Username, "module", module)
	http.Redirect(w, r, "/admin/module-urls?saved="+url.QueryEscape(module), http.StatusSeeOther)
}
