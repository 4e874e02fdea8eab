package redisstore

import (
	"strings"
	"testing"
)

// TestRedisURLForms pins which client each store URL gets and that every
// malformed one is a config error naming the store, without the password.
func TestRedisURLForms(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"redis://127.0.0.1:6379/0", "single"},
		{"rediss://user:pw@redis.example:6380/2", "single"},
		{"redis://:pw@10.0.0.1:26379/0?master_name=mymaster&addr=10.0.0.2:26379&addr=10.0.0.3:26379&password=master-pw", "failover"},
		{"rediss://10.0.0.1:26379?master_name=mymaster", "failover"},
		{"redis://:pw@10.0.0.1:7000?addr=10.0.0.2:7000&addr=10.0.0.3:7000", "cluster"},
		{"rediss://10.0.0.1:7000/0?cluster=true", "cluster"},
	} {
		rc, err := parseURL(tc.url)
		got := map[bool]string{rc.single != nil: "single", rc.failover != nil: "failover", rc.cluster != nil: "cluster"}[true]
		if err != nil || got != tc.want {
			t.Errorf("%s: %s, %v; want %s", tc.url, got, err, tc.want)
		}
	}
	rc, _ := parseURL("rediss://10.0.0.1:7000?addr=10.0.0.2:7000")
	if rc.cluster.TLSConfig == nil || len(rc.cluster.Addrs) != 2 {
		t.Errorf("rediss cluster: tls %v, addrs %v", rc.cluster.TLSConfig, rc.cluster.Addrs)
	}
	rc, _ = parseURL("redis://:sentinel-pw@10.0.0.1:26379/3?master_name=m&password=master-pw")
	if rc.failover.SentinelPassword != "sentinel-pw" || rc.failover.Password != "master-pw" || rc.failover.DB != 3 || rc.failover.MasterName != "m" {
		t.Errorf("sentinel credentials: %+v", rc.failover)
	}

	for _, tc := range []struct{ url, want string }{
		{"127.0.0.1:6379", "must be redis://"},
		{"http://:s3cret@127.0.0.1:6379", "must be redis://"},
		{"redis://:s3cret@", "must be redis://"},
		{"redis://:s3cret@127.0.0.1:6379/x", "invalid database number"},
		{"redis://:s3cret@127.0.0.1:6379/0?bogus=1", "unexpected option: bogus"},
		{"redis://:s3cret@127.0.0.1:26379?master_name=", "master_name is empty"},
		{"redis://:s3cret@127.0.0.1:26379?master_name=m&cluster=true", "exclude each other"},
		{"redis://:s3cret@127.0.0.1:26379?master_name=m&addr=nope", "addr"},
		{"redis://:s3cret@127.0.0.1:7000/1?addr=127.0.0.1:7001", "only database 0"},
		{"redis://:s3cret@127.0.0.1:7000?cluster=yes", "cluster must be true"},
		{"redis://:s3cret@127.0.0.1:7000?addr=127.0.0.1:7001&bogus=1", "unexpected option: bogus"},
	} {
		_, err := parseURL(tc.url)
		if err == nil || !strings.HasPrefix(err.Error(), "store: ") || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error %v; want one starting with store:, saying %q, without the password", tc.url, err, tc.want)
		}
	}

	for in, want := range map[string]string{
		"redis://:s3cret@127.0.0.1:6379/0":                                         "redis://***@127.0.0.1:6379/0",
		"redis://u:s3cret@10.0.0.1:26379/0?master_name=m&password=s3cret&addr=x:1": "redis://***@10.0.0.1:26379/0?master_name=m&password=***&addr=x:1",
		"rediss://10.0.0.1:7000?addr=10.0.0.2:7000":                                "rediss://10.0.0.1:7000?addr=10.0.0.2:7000",
	} {
		if got := RedactedURL(in); got != want {
			t.Errorf("RedactedURL: %s, want %s", got, want)
		}
	}
}
