package caddymodule

import (
	"html"
	"net/url"
	"strconv"
	"time"
)

// The expiry notice: pages served in the last expiry_notice of a session
// say when it ends, with a link that renews it through K1 (silently while
// the K1 session lives) and comes back to the same page. It rides on the
// page injector, so it is CSP-safe the same way as the launcher: markup and
// one <style> element with the response's nonce, no script, no style
// attribute.

// injectNotice is a page that gets only the notice, before </body> (the
// launcher is off); with the launcher on, the notice comes with it.
const injectNotice injectKind = 100

// noticeDue reports whether a page of the session gets the notice now.
func (h *Handler) noticeDue(e *sessionEntry, now time.Time) bool {
	return h.notice > 0 && e != nil && now.Unix() >= e.s.Expires()-int64(h.notice/time.Second)
}

// noticeHTML is the notice for a page at requestURI of a session that ends
// at expires (unix seconds). The time is shown in the server's time zone,
// with its name, since a page without script cannot know the reader's.
func noticeHTML(requestURI string, expires int64) string {
	end := time.Unix(expires, 0)
	rd := requestURI
	if !isLocalPath(rd) {
		rd = "/"
	}
	href := prefix + "login?renew=1&rd=" + url.QueryEscape(rd)
	return `<div id="k1sso-expiry" role="status" data-ends="` + strconv.FormatInt(expires, 10) + `">` +
		`Your KaseyaOne session ends at <time datetime="` + end.UTC().Format(time.RFC3339) + `">` +
		html.EscapeString(end.Format("15:04 MST")) + `</time> — ` +
		`<a id="k1sso-renew" href="` + html.EscapeString(href) + `">Stay signed in</a></div>`
}

// noticeCSS styles the notice: a bar at the bottom of the window, above
// the page.
const noticeCSS = `#k1sso-expiry{position:fixed;left:50%;bottom:12px;transform:translateX(-50%);z-index:2147483647;` +
	`padding:8px 14px;border-radius:6px;background:#fff8e1;color:#3e2c00;border:1px solid #e0b000;` +
	`box-shadow:0 1px 4px rgba(0,0,0,.3);font:14px/1.3 system-ui,sans-serif}` +
	`#k1sso-expiry a{color:#0b5cab;font-weight:600}`
