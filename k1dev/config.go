package k1dev

import (
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Config is k1dev's world: companies, users, OAuth clients and modules. It is
// read from a JSON file (see LoadConfig) or built in (see DefaultConfig).
type Config struct {
	// Companies are the K1 companies users belong to.
	Companies []Company `json:"companies"`
	// Users are the K1 accounts that can log in.
	Users []User `json:"users"`
	// Clients are the registered OpenID Connect relying parties.
	Clients []Client `json:"clients"`
	// Modules are the applications K1 launches (My Modules, app launcher).
	Modules []Module `json:"modules"`
}

// Company is a K1 company (tenant of KaseyaOne itself).
type Company struct {
	// Name is what users type in the login form's company field.
	Name string `json:"name"`
}

// Tenant is one tenant of a module a user may launch.
type Tenant struct {
	// ID is sent to the module as the tenant parameter of a launch.
	ID string `json:"id"`
	// Name is shown in the tenant lists.
	Name string `json:"name"`
}

// User is a K1 account.
type User struct {
	// Username is the login name.
	Username string `json:"username"`
	// Company is the Name of the user's company.
	Company string `json:"company"`
	// Password is the first login factor (plain text: this is a dev tool).
	Password string `json:"password"`
	// Email is sent as the email claim and as login_hint of launches.
	Email string `json:"email"`
	// Name is the display name (name claim).
	Name string `json:"name"`
	// TOTPSecret is the base32 authenticator secret (30 s, 6 digits, SHA1).
	TOTPSecret string `json:"totp_secret"`
	// Tenants lists, per module name, the tenants the user may launch.
	Tenants map[string][]Tenant `json:"tenants,omitempty"`
	// Admin marks a company admin (may edit Admin Settings → Module URLs).
	Admin bool `json:"admin,omitempty"`
}

// Subject is the user's stable sub claim.
func (u *User) Subject() string { return "k1|" + u.Username }

// Client is a registered OpenID Connect relying party.
type Client struct {
	// ID is the client_id.
	ID string `json:"id"`
	// Secret is the client_secret (client_secret_basic or client_secret_post).
	Secret string `json:"secret"`
	// RedirectURIs are the registered redirect URIs. A loopback URI with a
	// port also matches the same URI on any other port (RFC 8252 §7.3).
	RedirectURIs []string `json:"redirect_uris"`
	// PostLogoutRedirectURIs are the registered post_logout_redirect_uri
	// values (loopback ports match like RedirectURIs).
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// InitiateLoginURI receives launches (OIDC Core §4).
	InitiateLoginURI string `json:"initiate_login_uri,omitempty"`
	// BackchannelLogoutURI receives logout tokens (Back-Channel Logout 1.0).
	BackchannelLogoutURI string `json:"backchannel_logout_uri,omitempty"`
	// FrontchannelLogoutURI is loaded in an iframe at logout (Front-Channel Logout 1.0).
	FrontchannelLogoutURI string `json:"frontchannel_logout_uri,omitempty"`
}

// Module is an application K1 launches through a client's initiate_login_uri.
type Module struct {
	// Name is the module's name, e.g. "BMS"; users' Tenants are keyed by it.
	Name string `json:"name"`
	// ClientID names the Client whose initiate_login_uri launches go to.
	ClientID string `json:"client_id"`
	// BaseURL is the module's root; relative landing pages resolve against it.
	BaseURL string `json:"base_url"`
	// LandingPage is sent as target_link_uri when set (absolute, or a path
	// relative to BaseURL). Default: BaseURL + "/".
	LandingPage string `json:"landing_page,omitempty"`
}

// Fixed TOTP secrets of the demo users, so `k1dev totp -user alice` works
// across restarts.
const (
	aliceTOTPSecret = "JBSWY3DPEHPK3PXPALICEAAAAAAAAAAA"
	bobTOTPSecret   = "JBSWY3DPEHPK3PXPBOBBBBBBBBBBBBBB"
	carolTOTPSecret = "JBSWY3DPEHPK3PXPCAROLAAAAAAAAAAA"
)

// DefaultConfig returns the demo data (the README's demo users): companies "Acme MSP" and
// "Other Co", users alice, bob and carol, the client bms-proxy and the module
// BMS. Each call returns a fresh copy.
func DefaultConfig() *Config {
	bothOrigins := func(paths ...string) []string {
		var out []string
		for _, origin := range []string{"http://localhost:8080", "http://127.0.0.1:8080"} {
			for _, p := range paths {
				out = append(out, origin+p)
			}
		}
		return out
	}
	return &Config{
		Companies: []Company{{Name: "Acme MSP"}, {Name: "Other Co"}},
		Users: []User{
			{
				Username: "alice", Company: "Acme MSP", Password: "alice-pass",
				Email: "alice@acme.example", Name: "Alice Admin", TOTPSecret: aliceTOTPSecret,
				Tenants: map[string][]Tenant{"BMS": {{ID: "acme", Name: "Acme"}, {ID: "acme-labs", Name: "Acme Labs"}}},
				Admin:   true,
			},
			{
				Username: "bob", Company: "Acme MSP", Password: "bob-pass",
				Email: "bob@acme.example", Name: "Bob Builder", TOTPSecret: bobTOTPSecret,
				Tenants: map[string][]Tenant{"BMS": {{ID: "acme", Name: "Acme"}}},
			},
			{
				Username: "carol", Company: "Other Co", Password: "carol-pass",
				Email: "carol@other.example", Name: "Carol Other", TOTPSecret: carolTOTPSecret,
				Tenants: map[string][]Tenant{"BMS": {{ID: "other", Name: "Other Co"}}},
			},
		},
		Clients: []Client{{
			ID:                     "bms-proxy",
			Secret:                 "bms-proxy-secret",
			RedirectURIs:           bothOrigins("/.k1sso/callback"),
			PostLogoutRedirectURIs: bothOrigins("/login", "/"),
			InitiateLoginURI:       "http://localhost:8080/.k1sso/initiate",
			BackchannelLogoutURI:   "http://localhost:8080/.k1sso/backchannel-logout",
			FrontchannelLogoutURI:  "http://localhost:8080/.k1sso/frontchannel-logout",
		}},
		Modules: []Module{{Name: "BMS", ClientID: "bms-proxy", BaseURL: "http://localhost:8080"}},
	}
}

// LoadConfig reads a JSON config file (the format of Config) and validates it.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("parsing config %s: %w", path, err)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("checking config %s: %w", path, err)
	}
	return &cfg, nil
}

// SetClientBaseURL moves every URI of the client clientID (redirect,
// post-logout, initiate-login, back- and front-channel) and the base URL of
// its modules to baseURL's scheme and host, keeping their paths. Tests use it
// to point a client at a proxy on a free port. Duplicates that result are
// dropped.
func (c *Config) SetClientBaseURL(clientID, baseURL string) {
	base, err := url.Parse(baseURL)
	if err != nil || base.Host == "" {
		return
	}
	move := func(raw string) string {
		if raw == "" {
			return ""
		}
		u, err := url.Parse(raw)
		if err != nil {
			return raw
		}
		u.Scheme, u.Host, u.User = base.Scheme, base.Host, nil
		return u.String()
	}
	moveAll := func(list []string) []string {
		var out []string
		seen := map[string]bool{}
		for _, raw := range list {
			m := move(raw)
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
		return out
	}
	for i := range c.Clients {
		cl := &c.Clients[i]
		if cl.ID != clientID {
			continue
		}
		cl.RedirectURIs = moveAll(cl.RedirectURIs)
		cl.PostLogoutRedirectURIs = moveAll(cl.PostLogoutRedirectURIs)
		cl.InitiateLoginURI = move(cl.InitiateLoginURI)
		cl.BackchannelLogoutURI = move(cl.BackchannelLogoutURI)
		cl.FrontchannelLogoutURI = move(cl.FrontchannelLogoutURI)
	}
	for i := range c.Modules {
		if c.Modules[i].ClientID == clientID {
			c.Modules[i].BaseURL = strings.TrimSuffix(move(c.Modules[i].BaseURL), "/")
		}
	}
}

// clone returns a deep copy, so a Server never shares state with its caller.
func (c *Config) clone() *Config {
	data, err := json.Marshal(c)
	if err != nil {
		panic(err) // plain data; cannot fail
	}
	var out Config
	if err := json.Unmarshal(data, &out); err != nil {
		panic(err)
	}
	return &out
}

// validate checks references and formats, naming the offending entry.
func (c *Config) validate() error {
	var errs []error
	companies := map[string]bool{}
	for _, co := range c.Companies {
		if co.Name == "" {
			errs = append(errs, errors.New("company without name"))
		}
		companies[co.Name] = true
	}
	users := map[string]bool{}
	for _, u := range c.Users {
		switch {
		case u.Username == "":
			errs = append(errs, errors.New("user without username"))
		case users[u.Username]:
			errs = append(errs, fmt.Errorf("user %q: duplicate username", u.Username))
		case !companies[u.Company]:
			errs = append(errs, fmt.Errorf("user %q: unknown company %q", u.Username, u.Company))
		case u.Email == "":
			errs = append(errs, fmt.Errorf("user %q: missing email", u.Username))
		}
		switch {
		case u.TOTPSecret == "":
			errs = append(errs, fmt.Errorf("user %q: missing totp_secret: every user needs a base32 authenticator secret, e.g. the output of `head -c 20 /dev/urandom | base32`", u.Username))
		case !isBase32(u.TOTPSecret):
			// The secret itself stays out of the message.
			errs = append(errs, fmt.Errorf("user %q: totp_secret is not base32 (letters A-Z and digits 2-7)", u.Username))
		}
		users[u.Username] = true
	}
	clients := map[string]bool{}
	for _, cl := range c.Clients {
		if cl.ID == "" || clients[cl.ID] {
			errs = append(errs, fmt.Errorf("client %q: empty or duplicate id", cl.ID))
		}
		clients[cl.ID] = true
		if len(cl.RedirectURIs) == 0 {
			errs = append(errs, fmt.Errorf("client %q: no redirect_uris", cl.ID))
		}
		for _, raw := range append(append([]string{cl.InitiateLoginURI, cl.BackchannelLogoutURI, cl.FrontchannelLogoutURI}, cl.RedirectURIs...), cl.PostLogoutRedirectURIs...) {
			if raw == "" {
				continue
			}
			if u, err := url.Parse(raw); err != nil || !u.IsAbs() || u.Host == "" {
				errs = append(errs, fmt.Errorf("client %q: %q is not an absolute URL", cl.ID, raw))
			}
		}
	}
	modules := map[string]bool{}
	for _, m := range c.Modules {
		if m.Name == "" || modules[m.Name] {
			errs = append(errs, fmt.Errorf("module %q: empty or duplicate name", m.Name))
		}
		modules[m.Name] = true
		if !clients[m.ClientID] {
			errs = append(errs, fmt.Errorf("module %q: unknown client %q", m.Name, m.ClientID))
		}
		if u, err := url.Parse(m.BaseURL); err != nil || !u.IsAbs() {
			errs = append(errs, fmt.Errorf("module %q: base_url %q is not an absolute URL", m.Name, m.BaseURL))
		}
	}
	return errors.Join(errs...)
}

// isBase32 reports whether s decodes as base32 (any letter case, with or
// without padding), as authenticator apps accept it.
func isBase32(s string) bool {
	_, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimRight(s, "=")))
	return err == nil
}

// Usernames lists the users' login names in the config's order.
func (c *Config) Usernames() []string {
	names := make([]string, 0, len(c.Users))
	for _, u := range c.Users {
		names = append(names, u.Username)
	}
	return names
}

// user returns the user named username, or nil.
func (c *Config) user(username string) *User {
	for i := range c.Users {
		if c.Users[i].Username == username {
			return &c.Users[i]
		}
	}
	return nil
}

// client returns the client with that id, or nil.
func (c *Config) client(id string) *Client {
	for i := range c.Clients {
		if c.Clients[i].ID == id {
			return &c.Clients[i]
		}
	}
	return nil
}

// module returns the module with that name, or nil.
func (c *Config) module(name string) *Module {
	for i := range c.Modules {
		if c.Modules[i].Name == name {
			return &c.Modules[i]
		}
	}
	return nil
}
