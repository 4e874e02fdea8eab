// Package sessioncookie holds what a login proxy's cookies need below the
// proxy's own policy: values signed (HMAC-SHA256) and encrypted (AES-256-CTR)
// with gorilla/securecookie under keys bound to one deployment, values larger
// than a browser keeps in one cookie spread over numbered chunks, cookies read
// by their exact name, and cookie attributes that the __Host- prefix accepts.
//
// It is generic over what the cookies carry: callers choose the names, the
// purposes their keys are derived for and the payloads.
package sessioncookie
