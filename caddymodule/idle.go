package caddymodule

import (
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/k1sso/k1sso/sessioncookie"
)

// The idle timeout is stateless: the session cookie carries when the
// session was last used (session.Used), so every instance reaches the same
// verdict without asking the store. Keeping that time exact would mean a
// new cookie, and a decryption, on every request; instead a session in use
// gets a new cookie at most once per h.touchEvery, and the timeout is
// counted from the time in the cookie: a session is over up to h.touchEvery
// before its exact idle time, never after it.
//
// In this instance the cache entry's `used` is the latest use seen here.
// The re-issued cookie is added to the cache as the same entry, so the old
// cookie (still sent by requests already on their way) and the new one
// share it: no second decryption, and a stream opened with the old cookie
// sees the uses made with the new one. At the next re-issue every key the
// entry gained before, other than the cookie of that request, leaves the
// cache: an entry has at most two keys however long the session lives, so
// re-issues do not crowd other sessions out of the bounded cache.

// idleOver reports whether the session went unused for the idle timeout.
func (h *Handler) idleOver(e *sessionEntry, now time.Time) bool {
	return h.idle > 0 && now.Unix()-int64(e.used.Load()) >= int64(h.idle/time.Second)
}

// touch records a use of the session: when the time of use in the cookie
// the browser has is h.touchEvery old, it returns the session with the new
// time, for reissue once the request turns out to carry an identity. Of
// concurrent requests, the one that moves the entry's time gets it; the
// others carry the session as it is. It reads the cookie, so it runs before
// k1sso's cookies are dropped from the request.
func (h *Handler) touch(r *http.Request, rq *request) *renewal {
	e, now := rq.entry, rq.now
	if h.idle == 0 {
		return nil
	}
	last := e.used.Load()
	if now.Unix()-int64(last) < int64(h.touchEvery/time.Second) || !e.used.CompareAndSwap(last, uint32(now.Unix())) {
		return nil
	}
	full := h.fullSession(r, rq)
	if full == nil || full.ID != e.s.ID() {
		return nil
	}
	sess := *full // the request's own copy stays as the cookie has it
	sess.Used = now.Unix()
	return &renewal{sess: &sess, from: keyOf(sessioncookie.ReadChunked(r, sessioncookie.Name(sessionCookie, rq.secure)))}
}

// renewal is a session due for a new cookie: the session with its new time
// of use, and the cache key of the cookie the request carried.
type renewal struct {
	sess *session
	from cacheKey
}

// reissueKeys are the cache keys a re-issue gave an entry: the cookie the
// request carried and the new one.
type reissueKeys [2]cacheKey

// reissue sets the session cookie with the new time of use, caches the new
// cookie as the same entry and drops the keys of an earlier re-issue that
// this request's cookie is not. rn nil: nothing to do.
func (h *Handler) reissue(w http.ResponseWriter, r *http.Request, rq *request, rn *renewal) {
	if rn == nil {
		return
	}
	sess, e := rn.sess, rq.entry
	secure := rq.secure
	v, err := securecookie.EncodeMulti(sessionCookie, sess, h.shared.codecs.session...)
	if err == nil {
		err = sessioncookie.WriteChunked(w, r, sessioncookie.Name(sessionCookie, secure), v, secure, time.Until(time.Unix(sess.Expires, 0)))
	}
	if err != nil {
		if ce := h.logger.Check(zapcore.DebugLevel, "re-issuing the session cookie"); ce != nil {
			ce.Write(zap.Error(err))
		}
		return
	}
	to := keyOf(v)
	h.shared.sessions.Add(to, e)
	if old := e.reissued.Swap(&reissueKeys{rn.from, to}); old != nil {
		for _, k := range old {
			if k != rn.from && k != to {
				h.shared.sessions.Remove(k)
			}
		}
	}
}
