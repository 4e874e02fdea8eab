package bms

// Tenant is a BMS tenant (a company in BMS).
type Tenant struct {
	// ID is the tenant id, as sent in X-BMS-Tenant.
	ID string
	// Name is the tenant's display name.
	Name string
}

// Account is a BMS user account. Usernames are unique across tenants, so the
// native login form asks only for username and password.
type Account struct {
	// Username is the BMS login name, as sent in X-BMS-User.
	Username string
	// Password is the native BMS password (plain text: this is a stand-in).
	Password string
	// Tenant is the ID of the account's tenant.
	Tenant string
	// Email is the account's email address (what the proxy matches on).
	Email string
	// Roles are the account's roles, e.g. "admin".
	Roles []string
}

// Config is the demo BMS's world: its tenants and accounts.
type Config struct {
	// Tenants are the BMS tenants.
	Tenants []Tenant
	// Accounts are the BMS's own accounts, for the native login.
	Accounts []Account
}

// DefaultConfig returns the BMS side of the demo world (the README's demo users):
//
//	tenant     user        password         roles
//	acme       alice       alice-bms        admin
//	acme       bob         bob-bms          -
//	acme-labs  alice.labs  alice.labs-bms   admin
//
// Tenant "acme" is named "Acme", "acme-labs" is "Acme Labs". Each call
// returns a fresh copy.
func DefaultConfig() Config {
	return Config{
		Tenants: []Tenant{
			{ID: "acme", Name: "Acme"},
			{ID: "acme-labs", Name: "Acme Labs"},
		},
		Accounts: []Account{
			{Username: "alice", Password: "alice-bms", Tenant: "acme", Email: "alice@acme.example", Roles: []string{"admin"}},
			{Username: "bob", Password: "bob-bms", Tenant: "acme", Email: "bob@acme.example"},
			{Username: "alice.labs", Password: "alice.labs-bms", Tenant: "acme-labs", Email: "alice@acme.example", Roles: []string{"admin"}},
		},
	}
}

// account returns the account named username, or nil.
func (c *Config) account(username string) *Account {
	for i := range c.Accounts {
		if c.Accounts[i].Username == username {
			return &c.Accounts[i]
		}
	}
	return nil
}

// tenantName returns the display name of tenant id, or id itself when the
// tenant is unknown.
func (c *Config) tenantName(id string) string {
	for _, t := range c.Tenants {
		if t.ID == id {
			return t.Name
		}
	}
	return id
}
