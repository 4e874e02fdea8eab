package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"

	"github.com/k1sso/k1sso/store"
)

// Redis key layout: every key of a deployment starts with keyPrefix and
// its namespace (see store.Options), as "k1sso:<namespace>:"; revocations
// live under that prefix + "revoked:" and each one is also published on the
// prefix + "revocations" channel, so every instance learns it at once.
const (
	keyPrefix = "k1sso:"
	// commandTimeout bounds every command; the store is never on the hot path
	// but logins and logouts wait for it.
	commandTimeout = 2 * time.Second
	// pingInterval is how often an idle subscription is pinged; each answer
	// proves the instance has seen every revocation published before.
	pingInterval = 500 * time.Millisecond
)

func init() {
	// go-redis prints every failed dial to stderr; while Redis is down that
	// is one line per attempt. The store logs outages itself (once, and
	// when they end), so go-redis's own lines go to Caddy's log at debug
	// level. The logger is global to go-redis, so this also applies to any
	// other module of the same Caddy build that uses go-redis.
	redis.SetLogger(goRedisLogger{})
}

// goRedisLogger sends go-redis's log lines to Caddy's logger at debug level.
type goRedisLogger struct{}

func (goRedisLogger) Printf(_ context.Context, format string, v ...any) {
	if ce := caddy.Log().Named("k1sso.redis").Check(zapcore.DebugLevel, "go-redis"); ce != nil {
		ce.Write(zap.String("message", fmt.Sprintf(format, v...)))
	}
}

// Store keeps entries in Redis: plain keys with a TTL, SET NX for
// PutIfAbsent, and pub/sub to push revocations. go-redis reconnects on its
// own; Watch subscribes again and reloads every revocation after a lost
// connection, since messages published meanwhile are gone. The client is
// one server, a Sentinel-managed master or a Cluster (see parseURL).
type Store struct {
	c redis.UniversalClient
	// waitReplica: with Sentinel, a revocation counts as stored only once
	// a replica has it, so a failover right after it cannot lose it.
	waitReplica bool
	prefix      string // keyPrefix + namespace + ":"
	channel     string // where revocations are published
	logger      *zap.Logger
	now         func() time.Time
}

// New returns the store of opts.Namespace on the Redis of rawURL (see
// Backend.URL). It does not connect: go-redis does on first use.
func New(rawURL string, opts store.Options) (*Store, error) {
	rc, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	opts = opts.WithDefaults()
	prefix := keyPrefix + opts.Namespace + ":"
	s := &Store{prefix: prefix, channel: prefix + "revocations", logger: opts.Logger, now: opts.Now}
	// Short timeouts and one retry: a store that is down must be noticed
	// within the store grace, not after go-redis's defaults.
	switch {
	case rc.failover != nil:
		o := rc.failover
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = time.Second, commandTimeout, commandTimeout
		o.MaxRetries, o.DisableIdentity = 1, true
		s.c, s.waitReplica = redis.NewFailoverClient(o), true
	case rc.cluster != nil:
		o := rc.cluster
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = time.Second, commandTimeout, commandTimeout
		o.MaxRetries, o.DisableIdentity = 1, true
		s.c = redis.NewClusterClient(o)
	default:
		o := rc.single
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = time.Second, commandTimeout, commandTimeout
		o.MaxRetries, o.DisableIdentity = 1, true
		s.c = redis.NewClient(o)
	}
	return s, nil
}

// GetLegacy reads key of the layout before namespaces (k1sso:<key>).
func (s *Store) GetLegacy(ctx context.Context, key string) ([]byte, error) {
	b, err := s.c.Get(ctx, keyPrefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
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

// Extend runs extendScript: the later time wins on the server.
func (s *Store) Extend(ctx context.Context, key string, until int64) error {
	if until < s.now().Unix() {
		return nil
	}
	return extendScript.Run(ctx, s.c, []string{s.prefix + key}, until).Err()
}

// Get returns the value of key, or store.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := s.c.Get(ctx, s.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	return b, err
}

// Put stores value under key with Redis's TTL (0: none).
func (s *Store) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return s.c.Set(ctx, s.prefix+key, value, ttl).Err()
}

// PutIfAbsent is SET NX.
func (s *Store) PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	return s.c.SetNX(ctx, s.prefix+key, value, ttl).Result()
}

// Revoke stores the revocation's key and publishes it.
func (s *Store) Revoke(ctx context.Context, rv store.Revocation) error {
	b, ttl, ok, err := rv.Record(s.now())
	if !ok {
		return err
	}
	// The key first: an instance that (re)subscribes and then lists keys
	// cannot miss a revocation whose message came before its subscription.
	key := s.prefix + "revoked:" + rv.Name()
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
func (s *Store) revokeReplicated(ctx context.Context, key string, b []byte, ttl time.Duration) error {
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
			n, err := cn.Do(ctx, "WAIT", 1, replicaWait.Milliseconds()).Int64()
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

// replicaWait bounds how long a revocation waits for a replica (with
// Sentinel); a replica on the same network answers in milliseconds.
const replicaWait = 500 * time.Millisecond

// eachShard calls fn with every master of a Cluster, or with the one
// client otherwise: a key scan on a Cluster must visit every master.
func (s *Store) eachShard(ctx context.Context, fn func(ctx context.Context, c redis.UniversalClient) error) error {
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return fn(ctx, c) })
	}
	return fn(ctx, s.c)
}

// Revocations scans the revoked: keys of every master.
func (s *Store) Revocations(ctx context.Context) ([]store.Revocation, error) {
	var mu sync.Mutex
	var out []store.Revocation
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
				if rv, err := store.ParseRevocation(b); err == nil {
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
func (s *Store) Watch(ctx context.Context, sink store.Sink) {
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

func (s *Store) watchOnce(ctx context.Context, sink store.Sink, failing *bool) error {
	ps := s.c.Subscribe(ctx, s.channel)
	defer ps.Close()
	for {
		msg, err := ps.ReceiveTimeout(ctx, commandTimeout)
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
		sink.Add(rv)
	}
	sink.Synced(start)
	if *failing {
		s.logger.Info("redis store: revocations in sync again", zap.Int("revocations", len(all)))
		*failing = false
	}
	lastSync, pingSent := start, time.Time{}
	for {
		if pingSent.IsZero() && time.Since(lastSync) >= pingInterval {
			pingSent = time.Now()
			if err := ps.Ping(ctx); err != nil {
				return err
			}
		}
		if !pingSent.IsZero() && time.Since(pingSent) > commandTimeout {
			return errors.New("no answer to ping")
		}
		msg, err := ps.ReceiveTimeout(ctx, pingInterval)
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				continue
			}
			return err
		}
		switch m := msg.(type) {
		case *redis.Message:
			if rv, err := store.ParseRevocation([]byte(m.Payload)); err == nil {
				sink.Add(rv)
			}
		case *redis.Pong:
			// Pub/sub keeps order: every message published before the
			// ping has been received.
			if !pingSent.IsZero() {
				sink.Synced(pingSent)
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

// Close closes the client.
func (s *Store) Close() error { return s.c.Close() }

// Interface guards
var (
	_ store.Store        = (*Store)(nil)
	_ store.LegacyReader = (*Store)(nil)
)
