package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
)

// Redis key layout: every key of a deployment starts with redisPrefix and
// its namespace (see storeNamespace), as "k1sso:<namespace>:"; revocations
// live under that prefix + "revoked:" and each one is also published on the
// prefix + "revocations" channel, so every instance learns it at once.
const (
	redisPrefix = "k1sso:"
	// redisTimeout bounds every command; the store is never on the hot path
	// but logins and logouts wait for it.
	redisTimeout = 2 * time.Second
	// redisPing is how often an idle subscription is pinged; each answer
	// proves the instance has seen every revocation published before.
	redisPing = 500 * time.Millisecond
)

func init() {
	// go-redis prints every failed dial to stderr; while Redis is down that
	// is one line per attempt. The store logs outages itself (once, and
	// when they end), so go-redis's own lines go to Caddy's log at debug
	// level. The logger is global to go-redis, so this also applies to any
	// other module of the same Caddy build that uses go-redis.
	redis.SetLogger(redisLogger{})
}

// redisLogger sends go-redis's log lines to Caddy's logger at debug level.
type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	if ce := caddy.Log().Named("k1sso.redis").Check(zapcore.DebugLevel, "go-redis"); ce != nil {
		ce.Write(zap.String("message", fmt.Sprintf(format, v...)))
	}
}

// redisStore keeps entries in Redis: plain keys with a TTL, SET NX for
// PutIfAbsent, and pub/sub to push revocations. go-redis reconnects on its
// own; Watch subscribes again and reloads every revocation after a lost
// connection, since messages published meanwhile are gone. The client is
// one server, a Sentinel-managed master or a Cluster (see parseRedisURL).
type redisStore struct {
	c redis.UniversalClient
	// waitReplica: with Sentinel, a revocation counts as stored only once
	// a replica has it, so a failover right after it cannot lose it.
	waitReplica bool
	prefix      string // redisPrefix + namespace + ":"
	channel     string // where revocations are published
	logger      *zap.Logger
}

// redisConfig is a parsed redis URL: exactly one of its fields is set.
type redisConfig struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// parseRedisURL reads the three forms of the store URL:
//
//	redis://[user:password@]host:port/db                       one server
//	redis://[user:password@]host:port/db?master_name=NAME&addr=host:port...
//	                                                           Sentinel: the host and each addr are sentinels
//	redis://[user:password@]host:port?addr=host:port...        Cluster: seed nodes (or ?cluster=true with one)
//
// rediss:// is the same over TLS. It never connects. Errors name the
// store option and never quote the URL, which may hold a password.
func parseRedisURL(raw string) (redisConfig, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" || u.Opaque != "" {
		return redisConfig{}, errors.New("store: the redis URL must be redis://host:port/db or rediss://host:port/db")
	}
	q := u.Query()
	wrap := func(err error) error {
		return fmt.Errorf("store: redis URL: %s", strings.TrimPrefix(err.Error(), "redis: "))
	}
	var rc redisConfig
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

func newRedisStore(u, ns string, logger *zap.Logger) (*redisStore, error) {
	rc, err := parseRedisURL(u)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	prefix := redisPrefix + ns + ":"
	s := &redisStore{prefix: prefix, channel: prefix + "revocations", logger: logger}
	// Short timeouts and one retry: a store that is down must be noticed
	// within the store grace, not after go-redis's defaults.
	switch {
	case rc.failover != nil:
		o := rc.failover
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = time.Second, redisTimeout, redisTimeout
		o.MaxRetries, o.DisableIdentity = 1, true
		s.c, s.waitReplica = redis.NewFailoverClient(o), true
	case rc.cluster != nil:
		o := rc.cluster
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = time.Second, redisTimeout, redisTimeout
		o.MaxRetries, o.DisableIdentity = 1, true
		s.c = redis.NewClusterClient(o)
	default:
		o := rc.single
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = time.Second, redisTimeout, redisTimeout
		o.MaxRetries, o.DisableIdentity = 1, true
		s.c = redis.NewClient(o)
	}
	return s, nil
}

func (s *redisStore) getLegacy(ctx context.Context, key string) ([]byte, error) {
	b, err := s.c.Get(ctx, redisPrefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, errNotFound
	}
	return b, err
}

// extendScript is Store.Extend in one step on the server: the later time
// wins, and the key expires a second after it.
var extendScript = redis.NewScript(`
local old = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local v = tonumber(ARGV[1])
if v > old then
	redis.call('SET', KEYS[1], ARGV[1])
	redis.call('EXPIREAT', KEYS[1], v + 1)
end
return 0`)

func (s *redisStore) Extend(ctx context.Context, key string, until int64) error {
	if until < clockNow().Unix() {
		return nil
	}
	return extendScript.Run(ctx, s.c, []string{s.prefix + key}, until).Err()
}

func (s *redisStore) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := s.c.Get(ctx, s.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, errNotFound
	}
	return b, err
}

func (s *redisStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return s.c.Set(ctx, s.prefix+key, value, ttl).Err()
}

func (s *redisStore) PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	return s.c.SetNX(ctx, s.prefix+key, value, ttl).Result()
}

func (s *redisStore) Revoke(ctx context.Context, rv revocation) error {
	b, ttl, ok, err := rv.record()
	if !ok {
		return err
	}
	// The key first: an instance that (re)subscribes and then lists keys
	// cannot miss a revocation whose message came before its subscription.
	key := s.prefix + "revoked:" + rv.name()
	if !s.waitReplica {
		if err := s.c.Set(ctx, key, b, ttl).Err(); err != nil {
			return err
		}
		return s.c.Publish(ctx, s.channel, b).Err()
	}
	return s.revokeReplicated(ctx, key, b, ttl)
}

// revokeReplicated stores a revocation on a Sentinel-managed master and,
// while the master has a replica connected, waits until one has it, so a
// failover right after cannot lose it. WAIT counts the replicas that have
// this connection's writes, so SET, ROLE and WAIT share one connection.
// Without a connected replica (e.g. after a failover, until the old master
// is back as a replica) there is nothing to wait for.
func (s *redisStore) revokeReplicated(ctx context.Context, key string, b []byte, ttl time.Duration) error {
	cn := s.c.(*redis.Client).Conn()
	defer cn.Close()
	if err := cn.Set(ctx, key, b, ttl).Err(); err != nil {
		return err
	}
	role, err := cn.Do(ctx, "ROLE").Slice()
	if err != nil {
		return err
	}
	var waitErr error
	if len(role) >= 3 {
		if replicas, _ := role[2].([]any); len(replicas) > 0 {
			n, err := cn.Do(ctx, "WAIT", 1, redisReplicaWait.Milliseconds()).Int64()
			if err != nil {
				return err
			}
			if n < 1 {
				// Stored and pushed below, but a failover now could
				// lose it: the revoker keeps it and stores it again.
				waitErr = errors.New("no replica confirmed the revocation")
			}
		}
	}
	if err := s.c.Publish(ctx, s.channel, b).Err(); err != nil {
		return err
	}
	return waitErr
}

// redisReplicaWait bounds how long a revocation waits for a replica (with
// Sentinel); a replica on the same network answers in milliseconds.
const redisReplicaWait = 500 * time.Millisecond

// eachShard calls fn with every master of a Cluster, or with the one
// client otherwise: a key scan on a Cluster must visit every master.
func (s *redisStore) eachShard(ctx context.Context, fn func(ctx context.Context, c redis.UniversalClient) error) error {
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return fn(ctx, c) })
	}
	return fn(ctx, s.c)
}

func (s *redisStore) Revocations(ctx context.Context) ([]revocation, error) {
	var mu sync.Mutex
	var out []revocation
	err := s.eachShard(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		iter := c.Scan(ctx, 0, s.prefix+"revoked:*", 500).Iterator()
		var keys []string
		flush := func() error {
			if len(keys) == 0 {
				return nil
			}
			// GETs in a pipeline, not MGET: on a Cluster the keys of one
			// master are in different hash slots.
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Get(ctx, k)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, cmd := range cmds {
				b, err := cmd.(*redis.StringCmd).Bytes()
				if err != nil {
					continue // expired between SCAN and GET
				}
				if rv, err := parseRevocation(b); err == nil {
					out = append(out, rv)
				}
			}
			keys = keys[:0]
			return nil
		}
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if len(keys) == 500 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return flush()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Watch subscribes to the revocation channel, loads every stored
// revocation once the subscription is live, then adds each pushed one. A
// lost connection starts over (subscribe, full load) after a short pause.
func (s *redisStore) Watch(ctx context.Context, sink revocationSink) {
	failing := false
	for ctx.Err() == nil {
		err := s.watchOnce(ctx, sink, &failing)
		if ctx.Err() != nil {
			return
		}
		if !failing {
			s.logger.Warn("redis store: lost the revocation subscription; reconnecting", zap.Error(err))
		}
		failing = true
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *redisStore) watchOnce(ctx context.Context, sink revocationSink, failing *bool) error {
	ps := s.c.Subscribe(ctx, s.channel)
	defer ps.Close()
	for {
		msg, err := ps.ReceiveTimeout(ctx, redisTimeout)
		if err != nil {
			return err
		}
		if _, ok := msg.(*redis.Subscription); ok {
			break
		}
	}
	// Subscribed: anything revoked from now on is pushed; load the rest.
	start := time.Now()
	all, err := s.Revocations(ctx)
	if err != nil {
		return err
	}
	for _, rv := range all {
		sink.add(rv)
	}
	sink.synced(start)
	if *failing {
		s.logger.Info("redis store: revocations in sync again", zap.Int("revocations", len(all)))
		*failing = false
	}
	lastSync, pingSent := start, time.Time{}
	for {
		if pingSent.IsZero() && time.Since(lastSync) >= redisPing {
			pingSent = time.Now()
			if err := ps.Ping(ctx); err != nil {
				return err
			}
		}
		if !pingSent.IsZero() && time.Since(pingSent) > redisTimeout {
			return errors.New("no answer to ping")
		}
		msg, err := ps.ReceiveTimeout(ctx, redisPing)
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				continue
			}
			return err
		}
		switch m := msg.(type) {
		case *redis.Message:
			if rv, err := parseRevocation([]byte(m.Payload)); err == nil {
				sink.add(rv)
			}
		case *redis.Pong:
			// Pub/sub keeps order: every message published before the
			// ping has been received.
			if !pingSent.IsZero() {
				sink.synced(pingSent)
				lastSync, pingSent = pingSent, time.Time{}
			}
		case *redis.Subscription:
			// go-redis subscribed again on a new connection: messages may
			// have been lost in between.
			if m.Kind == "subscribe" {
				return errors.New("resubscribed")
			}
		}
	}
}

func (s *redisStore) Close() error { return s.c.Close() }

// Interface guards
var _ Store = (*redisStore)(nil)

// redactedURL names a store URL without its passwords (the one in front
// of the host and a password parameter, as in a Sentinel URL), for
// messages.
func redactedURL(raw string) string {
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
