package bms

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"log"
	"net/http"
)

//go:embed static
var staticFS embed.FS

//go:embed templates/*.html
var templateFS embed.FS

// pages holds one template per page, each the page file plus layout.html.
var pages = parsePages()

// parsePages parses every page template with the shared layout.
func parsePages() map[string]*template.Template {
	funcs := template.FuncMap{"truncate": truncate}
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, file := range names {
		name := file[len("templates/") : len(file)-len(".html")]
		switch name {
		case "layout":
			continue
		case "login": // a page of its own, without the header bar
			out[name] = template.Must(template.New("login.html").Funcs(funcs).ParseFS(templateFS, file))
		default:
			out[name] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, file))
		}
	}
	return out
}

// pageData is what the page templates see.
type pageData struct {
	Title    string
	Active   string // the nav item to highlight
	Identity *identity
	Error    string
	Username string // the login form's username, after a failed attempt
	Headers  []headerRow
	Tickets  []ticket
	Created  []newTicket // the tickets page: created with the form
}

// headerRow is one row of the dashboard's identity-headers table.
type headerRow struct {
	Name  string
	Value string
}

// headerRows returns the identity headers present in h, in IdentityHeaders
// order.
func headerRows(h http.Header) []headerRow {
	var rows []headerRow
	for _, name := range IdentityHeaders {
		if v := h.Values(name); len(v) > 0 {
			rows = append(rows, headerRow{Name: name, Value: v[0]})
		}
	}
	return rows
}

// truncate shortens s to n runes plus an ellipsis.
func truncate(n int, s string) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// render writes page name with status. Rendering into a buffer first means a
// template error gives a clean 500 rather than half a page.
func (s *server) render(w http.ResponseWriter, status int, name string, data pageData) {
	t := pages[name]
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		log.Printf("bms: rendering %s: %v", name, err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// ticket is a fake service desk ticket.
type ticket struct {
	ID       string
	Title    string
	Account  string
	Priority string
	Status   string
}

// ticketsFor returns the fake tickets of a tenant.
func ticketsFor(tenant string) []ticket {
	if tenant == "acme-labs" {
		return []ticket{
			{"T20240311.0004", "Lab VPN drops every hour", "Acme Labs R&D", "High", "In Progress"},
			{"T20240311.0007", "Provision test tenant for QA", "Acme Labs QA", "Medium", "New"},
		}
	}
	return []ticket{
		{"T20240308.0001", "Printer on 3rd floor offline", "Contoso Ltd", "Medium", "New"},
		{"T20240308.0002", "Outlook keeps asking for password", "Northwind Traders", "High", "In Progress"},
		{"T20240309.0003", "New laptop for onboarding", "Fabrikam Inc", "Low", "Waiting Customer"},
		{"T20240310.0005", "Backup job failed on FS01", "Contoso Ltd", "Critical", "New"},
		{"T20240310.0006", "Renew SSL certificate for portal", "Tailspin Toys", "Medium", "Complete"},
	}
}
