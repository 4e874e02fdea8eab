package caddymodule

// launcherIcon is a 3×3 grid of squares, the usual app-launcher icon.
// Inline SVG needs no img-src.
const launcherIcon = `<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false" fill="currentColor">` +
	`<rect x="3" y="3" width="5" height="5" rx="1"/><rect x="10" y="3" width="5" height="5" rx="1"/><rect x="17" y="3" width="5" height="5" rx="1"/>` +
	`<rect x="3" y="10" width="5" height="5" rx="1"/><rect x="10" y="10" width="5" height="5" rx="1"/><rect x="17" y="10" width="5" height="5" rx="1"/>` +
	`<rect x="3" y="17" width="5" height="5" rx="1"/><rect x="10" y="17" width="5" height="5" rx="1"/><rect x="17" y="17" width="5" height="5" rx="1"/></svg>`

// launcherLink opens the launcher icon's link to /.k1sso/launcher.
const launcherLink = `<a id="k1sso-launcher" href="` + prefix + `launcher" title="KaseyaOne apps" aria-label="KaseyaOne apps"`

// launcherHTML is the launcher icon right after the page's #user-name
// element; launcherFixedHTML the one fixed at the top right of a page
// without it.
const (
	launcherHTML      = launcherLink + `>` + launcherIcon + `</a>`
	launcherFixedHTML = launcherLink + ` class="k1sso-fixed">` + launcherIcon + `</a>`
)
