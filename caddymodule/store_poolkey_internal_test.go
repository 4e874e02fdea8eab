package caddymodule

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/k1sso/k1sso/store"
	"github.com/k1sso/k1sso/store/caddystore"
)

// carelessBackend is a store module whose PoolKey ignores its options, as
// a third party's might.
type carelessBackend struct {
	caddystore.Backend
	DB string `json:"db,omitempty"`
}

func (carelessBackend) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: store.ModuleNamespace + ".testcareless", New: func() caddy.Module { return new(carelessBackend) }}
}

func (carelessBackend) PoolKey() string { return "" }

func init() { caddy.RegisterModule(carelessBackend{}) }

// Two configurations of one store module never share pooled state, even
// when the module's PoolKey cannot tell them apart.
func TestStorePoolKeyCoversModuleConfig(t *testing.T) {
	ids := map[string]bool{}
	for _, db := range []string{"a", "b", "a"} {
		h := &Handler{}
		h.StoreRaw = json.RawMessage(`{"backend":"testcareless","db":"` + db + `"}`)
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		sc, err := h.loadStore(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ids[sc.id] = true
	}
	if len(ids) != 2 {
		t.Fatalf("stores of db a, b, a gave %d distinct pool keys, want 2", len(ids))
	}
}
