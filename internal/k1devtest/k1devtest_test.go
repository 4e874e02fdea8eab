package k1devtest

import (
	"io"
	"strings"
	"testing"
)

func TestLoginTwiceAndWrongPassword(t *testing.T) {
	k1 := Start(t, nil)
	c := NewClient()
	resp, err := k1.Login(c, k1.URL+"/launcher", "alice", "Acme MSP", "alice-pass")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Request.URL.Path != "/launcher" || !strings.Contains(string(body), `data-tenant="acme-labs"`) {
		t.Fatalf("ended at %s: %.300s", resp.Request.URL, body)
	}
	// With a live session no form is shown; Login just returns the page.
	resp, err = k1.Login(c, k1.URL+"/", "alice", "Acme MSP", "alice-pass")
	if err != nil || resp.Request.URL.Path != "/" {
		t.Fatalf("second login: %v", err)
	}
	resp.Body.Close()
	if _, err := k1.Login(NewClient(), k1.URL+"/", "alice", "Acme MSP", "wrong"); err == nil || !strings.Contains(err.Error(), "Wrong username") {
		t.Fatalf("wrong password: err = %v", err)
	}
}

func TestServeOutsideATestAndClose(t *testing.T) {
	k1, err := Serve(nil)
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	resp, err := k1.Login(NewClient(), k1.URL+"/", "alice", "Acme MSP", "alice-pass")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/" {
		t.Fatalf("ended at %s with status %d", resp.Request.URL, resp.StatusCode)
	}
	if err := k1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if resp, err := NewClient().Get(k1.URL + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("k1dev still answers after Close")
	}
	if err := (&Instance{}).Close(); err != nil {
		t.Fatalf("closing an Instance built by hand: %v", err)
	}
}
