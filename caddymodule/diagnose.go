package caddymodule

import (
	"os"
	"regexp"
	"strings"

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
