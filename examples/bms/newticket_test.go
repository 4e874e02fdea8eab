package bms

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestNewTicketForm(t *testing.T) {
	ts, c, _ := newClient(t)
	login(t, c, ts.URL, "bob", "bob-bms")
	if resp, body := get(t, c, ts.URL+"/tickets/new"); resp.StatusCode != http.StatusOK || !strings.Contains(body, `<form id="new-ticket" method="post" action="/tickets">`) {
		t.Fatalf("new ticket form: %d", resp.StatusCode)
	}
	form := url.Values{"title": {"Printer <on fire>"}, "account": {"Acme"}, "priority": {"High"}, "description": {"a\nb"}}
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/tickets", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _ := do(t, c, req)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/tickets?created=T-") {
		t.Fatalf("create: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body := get(t, c, ts.URL+"/tickets")
	for _, want := range []string{`<td class="title">Printer &lt;on fire&gt;</td>`, `<td class="account">Acme</td>`, `<td class="priority">High</td>`, `<td class="by">bob</td>`} {
		if !strings.Contains(body, want) {
			t.Errorf("tickets page lacks %s", want)
		}
	}
	if n := strings.Count(body, `<td class="title">`); n != 1 {
		t.Errorf("%d created tickets listed, want 1", n)
	}
	// A ticket needs a title; without a login the form is not taken.
	req, _ = http.NewRequest(http.MethodPost, ts.URL+"/tickets", strings.NewReader("title="))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, _ := do(t, c, req); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("empty title: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPost, ts.URL+"/tickets", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, _ := do(t, http.DefaultClient, req); resp.Request.URL.Path != "/login" {
		t.Errorf("anonymous post ended at %s, want the login page", resp.Request.URL.Path)
	}
}
