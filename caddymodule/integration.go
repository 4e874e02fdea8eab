package caddymodule

import (
	"context"
	"net/http"
)

// spLoginAllowed refuses an SP-initiated login into a tenant whose
// KaseyaOne integration is switched off. tenant may be "".
func (h *Handler) spLoginAllowed(ctx context.Context, tenant string) *loginFailure {
	return nil
}

// integrationCheck runs at the callback, after the account was chosen (acc
// may be nil while the user still has to pick a tenant).
func (h *Handler) integrationCheck(ctx context.Context, st *loginState, sess *session, acc *account) *loginFailure {
	return nil
}

// completePurpose finishes a login started for another purpose than
// signing in (st.Purpose), after the session was written.
func (h *Handler) completePurpose(w http.ResponseWriter, r *http.Request, st *loginState, sess *session) error {
	http.Redirect(w, r, st.RD, http.StatusFound)
	return nil
}
