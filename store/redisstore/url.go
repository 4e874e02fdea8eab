package redisstore

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// config is a parsed redis URL: exactly one of its fields is set.
type config struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// parseURL reads the three forms of the store URL:
//
//	redis://[user:password@]host:port/db                       one server
//	redis://[user:password@]host:port/db?master_name=NAME&addr=host:port...
//	                                                           Sentinel: the host and each addr are sentinels
//	redis://[user:password@]host:port?addr=host:port...        Cluster: seed nodes (or ?cluster=true with one)
//
// rediss:// is the same over TLS. It never connects. Errors name the
// store option and never quote the URL, which may hold a password.
func parseURL(raw string) (config, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" || u.Opaque != "" {
		return config{}, errors.New("store: the redis URL must be redis://host:port/db or rediss://host:port/db")
	}
	q := u.Query()
	wrap := func(err error) error {
		return fmt.Errorf("store: redis URL: %s", strings.TrimPrefix(err.Error(), "redis: "))
	}
	var rc config
	switch {
	case q.Has("master_name"):
		if q.Get("master_name") == "" {
			return rc, errors.New("store: redis URL: master_name is empty")
		}
		if q.Has("cluster") {
			return rc, errors.New("store: redis URL: master_name (Sentinel) and cluster exclude each other")
		}
		if rc.failover, err = redis.ParseFailoverURL(raw); err != nil {
			return rc, wrap(err)
		}
	case q.Has("cluster") || q.Has("addr"):
		if c := q.Get("cluster"); q.Has("cluster") && c != "true" {
			return rc, fmt.Errorf("store: redis URL: cluster must be true, not %q", c)
		}
		if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
			return rc, errors.New("store: redis URL: a Redis Cluster has only database 0")
		}
		q.Del("cluster")
		u.RawQuery, u.Path = q.Encode(), ""
		if rc.cluster, err = redis.ParseClusterURL(u.String()); err != nil {
			return rc, wrap(err)
		}
	default:
		if rc.single, err = redis.ParseURL(raw); err != nil {
			return rc, wrap(err)
		}
	}
	return rc, nil
}

// RedactedURL names a store URL without its passwords (the one in front
// of the host and a password parameter, as in a Sentinel URL), for
// messages.
func RedactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	hadUser := u.User != nil
	u.User = nil
	parts := strings.Split(u.RawQuery, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if strings.Contains(strings.ToLower(k), "password") {
			parts[i] = k + "=***"
		}
	}
	u.RawQuery = strings.Join(parts, "&")
	if hadUser {
		return strings.Replace(u.String(), "://", "://***@", 1)
	}
	return u.String()
}
