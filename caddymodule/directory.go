package caddymodule

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"go.uber.org/zap"
)

// usersHeader is the required first line of the users CSV.
var usersHeader = []string{"email", "bms_user", "tenant", "tenant_name", "roles"}

// directoryPoll is how often the users file is checked for changes.
var directoryPoll = time.Second

// account is one BMS account a K1 email maps to.
type account struct {
	Email      string
	BMSUser    string
	Tenant     string
	TenantName string
	Roles      []string
	roles      string // Roles joined with ","
}

// hasRole reports whether the account has the role.
func (a *account) hasRole(role string) bool { return slices.Contains(a.Roles, role) }

// dirData is one immutable load of the users file.
type dirData struct {
	byEmail map[string][]*account // accounts of an email, in file order
	gen     uint64                // changes on every successful reload
	loaded  time.Time             // when the file was read (status, adminapi.go)
}

// directory maps K1 emails to BMS accounts from the users CSV and reloads it
// when the file changes. A broken new file keeps the old data and logs why.
type directory struct {
	path   string
	data   atomic.Pointer[dirData]
	logger *zap.Logger
	stop   chan struct{}
	once   sync.Once
	stat   fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// openDirectory loads the users file; an error names the file and line.
func openDirectory(path string, logger *zap.Logger) (*directory, error) {
	d := &directory{path: path, logger: logger, stop: make(chan struct{})}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	data, err := loadUsers(path, 1)
	if err != nil {
		return nil, err
	}
	d.stat = fileStamp{st.ModTime(), st.Size()}
	d.data.Store(data)
	return d, nil // watch starts with the pooled state (app.go)
}

func (d *directory) close() { d.once.Do(func() { close(d.stop) }) }

// watch polls the file's size and modification time; polling needs no
// extra dependency and works on every file system and for atomic renames.
func (d *directory) watch() {
	t := time.NewTicker(directoryPoll)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.reloadIfChanged()
		}
	}
}

func (d *directory) reloadIfChanged() {
	st, err := os.Stat(d.path)
	if err != nil {
		if d.stat != (fileStamp{}) {
			d.logger.Error("users file unreadable; keeping the loaded directory", zap.String("path", d.path), zap.Error(err))
			k1ssoMetrics.directoryReload("error")
			d.stat = fileStamp{}
		}
		return
	}
	stamp := fileStamp{st.ModTime(), st.Size()}
	if stamp == d.stat {
		return
	}
	d.stat = stamp
	old := d.data.Load()
	data, err := loadUsers(d.path, old.gen+1)
	if err != nil {
		d.logger.Error("users file changed but is invalid; keeping the previous directory", zap.Error(err))
		k1ssoMetrics.directoryReload("error")
		return
	}
	d.data.Store(data)
	d.logger.Info("users file reloaded", zap.String("path", d.path), zap.Int("emails", len(data.byEmail)))
	k1ssoMetrics.directoryReload("success")
}

// normalEmail is the form in which emails are compared: without the ASCII
// spaces around it, A-Z lower-cased, every other character as it is. Emails
// therefore match ASCII-case-insensitively only. Unicode case rules would
// turn other letters into ASCII ones (the Kelvin sign U+212A lower-cases to
// "k", U+0130 to "i"), so a K1 account "\u212aate@acme.example" would
// match "kate@acme.example" of the users file.
func normalEmail(s string) string {
	s = textproto.TrimString(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.Map(func(r rune) rune {
				if r >= 'A' && r <= 'Z' {
					return r + 'a' - 'A'
				}
				return r
			}, s)
		}
	}
	return s
}

// accounts returns the BMS accounts of an email (already in normalEmail
// form).
func (d *directory) accounts(email string) []*account {
	return d.data.Load().byEmail[email]
}

// account returns the account of an email in a tenant, or nil.
func (d *directory) account(email, tenant string) *account {
	for _, a := range d.accounts(email) {
		if a.Tenant == tenant {
			return a
		}
	}
	return nil
}

// generation changes whenever the directory is reloaded.
func (d *directory) generation() uint64 { return d.data.Load().gen }

// tenants lists the tenants of the directory, sorted by id.
func (d *directory) tenants() []tenantOption {
	seen := map[string]bool{}
	var out []tenantOption
	for _, accs := range d.data.Load().byEmail {
		for _, a := range accs {
			if !seen[a.Tenant] {
				seen[a.Tenant] = true
				out = append(out, tenantOption{ID: a.Tenant, Name: a.TenantName})
			}
		}
	}
	slices.SortFunc(out, func(a, b tenantOption) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// tenantIndex answers "does any account have this tenant" from the
// directory, rebuilt only when the directory was reloaded.
type tenantIndex struct {
	mu  sync.Mutex
	gen uint64
	set map[string]bool
}

func (t *tenantIndex) has(d *directory, tenant string) bool {
	data := d.data.Load()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.set == nil || t.gen != data.gen {
		set := map[string]bool{}
		for _, accs := range data.byEmail {
			for _, a := range accs {
				set[a.Tenant] = true
			}
		}
		t.set, t.gen = set, data.gen
	}
	return t.set[tenant]
}

// loadUsers reads and checks a users file.
func loadUsers(path string, gen uint64) (*dirData, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	defer f.Close()
	data, err := parseUsers(f, gen)
	if err != nil {
		return nil, fmt.Errorf("users: %s: %w", path, err)
	}
	return data, nil
}

// parseUsers parses the users CSV; errors carry the line number.
func parseUsers(r io.Reader, gen uint64) (*dirData, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(usersHeader)
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = false
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("line 1: empty file; want the header " + strings.Join(usersHeader, ","))
	}
	if err != nil {
		return nil, csvErr(err)
	}
	for i := range head {
		if strings.TrimSpace(strings.ToLower(strings.TrimPrefix(head[i], "\ufeff"))) != usersHeader[i] {
			return nil, fmt.Errorf("line 1: header must be %s", strings.Join(usersHeader, ","))
		}
	}
	data := &dirData{byEmail: map[string][]*account{}, gen: gen, loaded: time.Now()}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvErr(err)
		}
		line, _ := cr.FieldPos(0)
		a := &account{
			Email:      normalEmail(rec[0]),
			BMSUser:    strings.TrimSpace(rec[1]),
			Tenant:     strings.TrimSpace(rec[2]),
			TenantName: strings.TrimSpace(rec[3]),
		}
		for _, role := range strings.Split(rec[4], ";") {
			if role = strings.TrimSpace(role); role != "" {
				a.Roles = append(a.Roles, role)
			}
		}
		a.roles = strings.Join(a.Roles, ",")
		if at := strings.IndexByte(a.Email, '@'); at <= 0 || at == len(a.Email)-1 || strings.ContainsAny(a.Email, " ,<>") || strings.IndexFunc(a.Email, unicode.IsSpace) >= 0 {
			return nil, fmt.Errorf("line %d: %q is not an email address", line, rec[0])
		}
		if a.BMSUser == "" || a.Tenant == "" {
			return nil, fmt.Errorf("line %d: bms_user and tenant must not be empty", line)
		}
		if !validHeaderValue(a.BMSUser) || !validHeaderValue(a.Tenant) || !validHeaderValue(a.TenantName) || !validHeaderValue(a.roles) {
			return nil, fmt.Errorf("line %d: control characters are not allowed", line)
		}
		if a.TenantName == "" {
			a.TenantName = a.Tenant
		}
		for _, other := range data.byEmail[a.Email] {
			if other.Tenant == a.Tenant {
				return nil, fmt.Errorf("line %d: %s appears twice in tenant %s", line, a.Email, a.Tenant)
			}
		}
		data.byEmail[a.Email] = append(data.byEmail[a.Email], a)
	}
	return data, nil
}

func csvErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d: %w", pe.Line, pe.Err)
	}
	return err
}
