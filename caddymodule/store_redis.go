package caddymodule

import (
	"context"
	"errors"
	"fmt"
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
// connection, since messages published meanwhile are gone.
type redisStore struct {
	c       *redis.Client
	prefix  string // redisPrefix + namespace + ":"
	channel string // where revocations are published
	logger  *zap.Logger
}

func parseRedisURL(u string) (*redis.Options, error) {
	opt, err := redis.ParseURL(u)
	if err != nil {
		// The error of ParseURL may quote the URL: name it without password.
		return nil, fmt.Errorf("store: %s is not a redis:// or rediss:// URL", redactedURL(u))
	}
	return opt, nil
}

func newRedisStore(u, ns string, logger *zap.Logger) (*redisStore, error) {
	opt, err := parseRedisURL(u)
	if err != nil {
		return nil, err
	}
	opt.DialTimeout = time.Second
	opt.ReadTimeout = redisTimeout
	opt.WriteTimeout = redisTimeout
	opt.MaxRetries = 1
	opt.DisableIdentity = true
	if logger == nil {
		logger = zap.NewNop()
	}
	prefix := redisPrefix + ns + ":"
	return &redisStore{c: redis.NewClient(opt), prefix: prefix, channel: prefix + "revocations", logger: logger}, nil
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
	if err := s.c.Set(ctx, s.prefix+"revoked:"+rv.name(), b, ttl).Err(); err != nil {
		return err
	}
	return s.c.Publish(ctx, s.channel, b).Err()
}

func (s *redisStore) Revocations(ctx context.Context) ([]revocation, error) {
	var out []revocation
	iter := s.c.Scan(ctx, 0, s.prefix+"revoked:*", 500).Iterator()
	var keys []string
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		vals, err := s.c.MGet(ctx, keys...).Result()
		if err != nil {
			return err
		}
		for _, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue // expired between SCAN and MGET
			}
			if rv, err := parseRevocation([]byte(str)); err == nil {
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
				return nil, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
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
