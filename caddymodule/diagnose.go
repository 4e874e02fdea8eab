package caddymodule

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// envPlaceholder finds {env.NAME} placeholders (NAME as Caddy reads it).
var envPlaceholder = regexp.MustCompile(`\{env\.([^{}]+)\}`)

// unsetEnv names the environment variables of raw's {env.*} placeholders
// that are not set, so an error can say why a secret is empty.
func unsetEnv(raw string) string {
	var unset []string
	for _, m := range envPlaceholder.FindAllStringSubmatch(raw, -1) {
		if _, ok := os.LookupEnv(m[1]); !ok {
			unset = append(unset, m[1])
		}
	}
	switch len(unset) {
	case 0:
		return ""
	case 1:
		return "the environment variable " + unset[0] + " is unset"
	}
	return "the environment variables " + strings.Join(unset, ", ") + " are unset"
}

// emptyHint explains why an option expanded to nothing.
func emptyHint(raw string) string {
	if u := unsetEnv(raw); u != "" {
		return " (" + u + ")"
	}
	if strings.Contains(raw, "{env.") {
		return " (the environment variable is set but empty)"
	}
	return ""
}

// k1Refusal is the OAuth error of a refused token request as K1 sent it:
// the error code and its description, trimmed for a log line. Neither
// ever holds a secret of ours: K1 describes the request, it does not echo
// the client secret or the code.
func k1Refusal(re *oauth2.RetrieveError) string {
	code := sanitizeCode(re.ErrorCode)
	if code == "" && re.Response != nil {
		code = "http_" + strings.TrimSpace(strings.SplitN(re.Response.Status, " ", 2)[0])
	}
	if re.ErrorDescription != "" {
		return code + " (" + truncate(re.ErrorDescription, 200) + ")"
	}
	return code
}

// Kinds of login problems, as the user's page names them.
const (
	problemConfig     = "configuration"  // this site and K1 disagree: the operator must act
	problemK1Refused  = "k1_refused"     // K1 said no to this sign-in
	problemK1Down     = "k1_unreachable" // K1 (or its keys) could not be reached
	problemNoAccount  = "no_bms_account" // K1 is fine, BMS has no account
	problemSignIn     = "sign_in"        // the sign-in itself went stale (state, code)
	problemNotAllowed = "not_allowed"    // the account may not do this here
	problemStore      = "store"          // the shared store could not be reached
)

// configErrors are OAuth error codes that mean the client's registration
// or credentials are wrong, not the user's sign-in.
var configErrors = map[string]bool{
	"invalid_client": true, "unauthorized_client": true, "invalid_request": true,
	"unsupported_grant_type": true, "unsupported_response_type": true, "invalid_scope": true,
	"invalid_request_uri": true, "invalid_redirect_uri": true, "redirect_uri_mismatch": true,
}

// tokenFailure is the refusal of a login whose token request failed:
// K1's error and error_description go to the log line, and an error that
// means a wrong client registration is a configuration problem.
func tokenFailure(err error) *loginFailure {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		f := k1Unreachable()
		f.log = []zap.Field{zap.String("error", err.Error())}
		return f
	}
	f := fail(http.StatusBadRequest, "token_exchange_refused", "Sign-in failed",
		"KaseyaOne refused to complete the sign-in.")
	code := sanitizeCode(re.ErrorCode)
	f.log = []zap.Field{zap.String("k1_error", code)}
	if re.ErrorDescription != "" {
		f.log = append(f.log, zap.String("k1_error_description", truncate(re.ErrorDescription, 200)))
	}
	if re.Response != nil {
		f.log = append(f.log, zap.Int("k1_status", re.Response.StatusCode))
	}
	f.kind = problemK1Refused
	if configErrors[code] {
		f.kind = problemConfig
	}
	return f
}

// lastErrorFields is the log field of why discovery last failed.
func lastErrorFields(k *k1Client) []zap.Field {
	err := k.LastError()
	if err == nil {
		return nil
	}
	return []zap.Field{zap.String("error", err.Error())}
}

// problemOf is the kind of a refused login.
func problemOf(f *loginFailure) string {
	if f.kind != "" {
		return f.kind
	}
	switch r := f.reason; {
	case r == "k1_unreachable":
		return problemK1Down
	case r == "no_bms_account" || r == "tenant_not_allowed":
		return problemNoAccount
	case r == "state_mismatch" || r == "state_reused" || r == "missing_code":
		return problemSignIn
	case r == "store_unavailable":
		return problemStore
	case r == "integration_off" || r == "company_mismatch" || r == "not_tenant_admin":
		return problemNotAllowed
	case r == "no_id_token" || r == "azp_missing" || r == "azp_mismatch" || r == "iss_missing" || r == "iss_mismatch":
		return problemConfig
	case strings.HasPrefix(r, "k1_error_") && configErrors[strings.TrimPrefix(r, "k1_error_")]:
		return problemConfig
	}
	return problemK1Refused
}

// problemDetail says on the user's page what kind of problem stopped the
// sign-in and who can fix it, after the failure's own detail.
func problemDetail(f *loginFailure) string {
	if f.detail != "" {
		return f.detail + " " + problemNote(f)
	}
	return problemNote(f)
}

func problemNote(f *loginFailure) string {
	switch problemOf(f) {
	case problemConfig:
		return "This is a configuration problem between this site and KaseyaOne: signing in again will not help. Please tell your administrator (the proxy's log has the details)."
	case problemK1Down:
		return "KaseyaOne could not be reached. This is usually temporary: try again in a minute."
	case problemNoAccount:
		return "Your KaseyaOne sign-in worked, but no BMS account here belongs to it."
	case problemSignIn:
		return "The sign-in itself expired or was used twice; a new sign-in fixes this."
	case problemStore:
		return "The proxy's session store could not be reached. This is usually temporary: try again in a minute."
	case problemNotAllowed:
		return "Your KaseyaOne sign-in worked, but this account may not do this here."
	}
	return "KaseyaOne refused this sign-in. Signing in again usually helps; if it keeps happening, tell your administrator."
}

// signInAgain is the "Sign in again" link of a refused login; it keeps the
// page the user wanted (a local path, checked when the login started).
func signInAgain(st *loginState) pageLink {
	href := prefix + "login"
	if st != nil && st.RD != "" && isLocalPath(st.RD) {
		href += "?rd=" + url.QueryEscape(st.RD)
	}
	return pageLink{Href: href, Text: "Sign in again"}
}

// withCause adds the error behind a refusal to its log line. go-oidc's and
// net/http's errors name URLs, issuers and audiences, never a token.
func withCause(f *loginFailure, err error) *loginFailure {
	if err != nil {
		f.log = append(f.log, zap.String("error", err.Error()))
	}
	return f
}
