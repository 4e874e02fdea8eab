package caddymodule

import (
	"errors"
	"strings"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/k1sso/k1sso/sessioncookie"
)

// MintSessionCookieForBench returns the value of a valid session cookie
// (named "k1sso", or "__Host-k1sso" on https) for email in tenant, as if the
// user had logged in at K1 as subject just now and the session lasted ttl,
// for the deployment of issuer and clientID (cookie keys are bound to it).
//
// It is a benchmarking aid: the load harness in bench/ uses it to present
// 100,000 distinct sessions without 100,000 logins. It needs the cookie
// secret, and whoever holds that secret can already forge any session, so it
// grants nothing new. It never touches a running handler.
func MintSessionCookieForBench(secret []byte, issuer, clientID, subject, email, tenant string, issued time.Time, ttl time.Duration) (string, error) {
	if len(secret) < 32 {
		return "", errors.New("minting a session cookie: the cookie secret needs at least 32 bytes")
	}
	s := &session{
		ID:      randomID(18),
		Subject: subject,
		Email:   email,
		Tenant:  tenant,
		Issued:  issued.Unix(),
		Expires: issued.Add(ttl).Unix(),
	}
	return securecookie.EncodeMulti(sessionCookie, s, newCodec(secret, sessioncookie.Deployment{Issuer: strings.TrimRight(issuer, "/"), ClientID: clientID}, "session", 0))
}
