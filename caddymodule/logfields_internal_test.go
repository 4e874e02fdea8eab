package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/k1sso/k1sso/store"
)

// TestSIDFieldsAreHashed: every log field made from a K1 session ID (the
// login lines and the admin API's audit line) carries its hash only.
func TestSIDFieldsAreHashed(t *testing.T) {
	const sid = "k1-session-0123456789"
	sum := sha256.Sum256([]byte(sid))
	want := map[string]any{"k1_sid_hash": hex.EncodeToString(sum[:8])}
	for what, f := range map[string]zapcore.Field{"sidField": sidField(sid), "auditField": auditField(store.KindSID, sid)} {
		enc := zapcore.NewMapObjectEncoder()
		f.AddTo(enc)
		if len(enc.Fields) != 1 || enc.Fields["k1_sid_hash"] != want["k1_sid_hash"] {
			t.Errorf("%s: fields %v, want %v", what, enc.Fields, want)
		}
	}
	enc := zapcore.NewMapObjectEncoder()
	sidField("").AddTo(enc)
	if len(enc.Fields) != 0 {
		t.Errorf("an empty sid is logged: %v", enc.Fields)
	}
}
