package bms

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// The live parts of the dashboard, driven by static/bms.js: a ticket count
// the page fetches (fetch()), and a ticket feed over an event stream
// (EventSource). They show what a proxy must get right for requests that
// are not page loads: a 401 the script can show, and a stream that ends
// with the session.

// feedInterval is how often the feed sends an update.
const feedInterval = time.Second

// handleTicketCount answers GET /api/tickets/count with the open tickets of
// the user's tenant; 401 JSON without a logged-in user.
func (s *server) handleTicketCount(w http.ResponseWriter, r *http.Request) {
	id := s.identify(r)
	w.Header().Set("Content-Type", "application/json")
	if id == nil {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"unauthorized"}` + "\n"))
		return
	}
	open := 0
	for _, t := range ticketsFor(id.Tenant) {
		if t.Status != "Complete" {
			open++
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"open": open, "user": id.User, "at": time.Now().UTC().Format(time.RFC3339)})
}

// handleTicketFeed streams GET /api/tickets/feed: an event per second with
// a ticket of the user's tenant, until the client goes away.
func (s *server) handleTicketFeed(w http.ResponseWriter, r *http.Request) {
	id := s.identify(r)
	if id == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"unauthorized"}` + "\n"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	rc := http.NewResponseController(w)
	tickets := ticketsFor(id.Tenant)
	t := time.NewTicker(feedInterval)
	defer t.Stop()
	for i := 0; ; i++ {
		tk := tickets[i%len(tickets)]
		b, _ := json.Marshal(map[string]any{"n": i, "id": tk.ID, "title": tk.Title, "status": tk.Status, "user": id.User})
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil || rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}
