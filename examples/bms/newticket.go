package bms

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxNewTickets bounds the tickets the demo keeps per tenant (the oldest
// go first).
const maxNewTickets = 50

// newTicket is a ticket created with the New ticket form.
type newTicket struct {
	ID          string
	Title       string
	Account     string
	Priority    string
	Description string
	By          string
	Created     time.Time
}

// newTickets are the tickets created since the demo started, per tenant.
type newTickets struct {
	mu     sync.Mutex
	next   int
	tenant map[string][]newTicket
}

func (n *newTickets) add(tenant string, t newTicket) newTicket {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.tenant == nil {
		n.tenant = map[string][]newTicket{}
	}
	n.next++
	t.ID = "T-" + strconv.Itoa(9000+n.next)
	list := append(n.tenant[tenant], t)
	if len(list) > maxNewTickets {
		list = list[len(list)-maxNewTickets:]
	}
	n.tenant[tenant] = list
	return t
}

func (n *newTickets) of(tenant string) []newTicket {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]newTicket(nil), n.tenant[tenant]...)
}

// handleNewTicketForm shows the New ticket form (GET /tickets/new).
func (s *server) handleNewTicketForm(w http.ResponseWriter, r *http.Request, id *identity) {
	s.render(w, http.StatusOK, "newticket", pageData{Title: "Service Desk: New ticket", Active: "tickets", Identity: id})
}

// handleCreateTicket creates a ticket from the form (POST /tickets) and
// shows the list with it.
func (s *server) handleCreateTicket(w http.ResponseWriter, r *http.Request, id *identity) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	field := func(name string, n int) string {
		v := strings.TrimSpace(r.PostForm.Get(name))
		if len(v) > n {
			v = v[:n]
		}
		return v
	}
	t := newTicket{Title: field("title", 200), Account: field("account", 100), Priority: field("priority", 20),
		Description: field("description", 4000), By: id.User, Created: time.Now()}
	if t.Title == "" {
		s.render(w, http.StatusBadRequest, "newticket", pageData{Title: "Service Desk: New ticket", Active: "tickets", Identity: id, Error: "A ticket needs a title."})
		return
	}
	t = s.created.add(id.Tenant, t)
	http.Redirect(w, r, "/tickets?created="+t.ID, http.StatusSeeOther)
}
