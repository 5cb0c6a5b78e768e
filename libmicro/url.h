/* url: the one check every call url passes before it can reach an app's request
 * line (the local API's path and body forms, inbound mesh REQUESTs, route urls
 * and the path of a route target). A url is an origin-form request target: a
 * path starting with '/', then an optional "?query", of visible ASCII only.
 * Percent-encoding is kept as it is (never decoded on the way), but it is
 * checked: every '%' starts a %HH escape, an escape may not encode a control
 * byte (%00-%1f, %7f), and a dot segment is refused however it is spelled
 * ("..", "%2e%2E", ".%2e", split by '/', '\', %2f or %5c). Refusing rather than
 * normalising keeps one spelling of a url: what the caller sent is what the app
 * gets, or nothing. */
#ifndef MICRO_URL_H
#define MICRO_URL_H

#include <stddef.h>

#define URL_MAX 1023 /* bytes, without the NUL */

enum {
    URL_OK = 0,
    URL_E_EMPTY = -1,    /* empty, or does not start with '/' */
    URL_E_LONG = -2,     /* longer than URL_MAX */
    URL_E_CHAR = -3,     /* a byte that is not visible ASCII: CR, LF, space, control, DEL, >= 0x80 */
    URL_E_FRAGMENT = -4, /* '#': a fragment never goes into a request line */
    URL_E_ESCAPE = -5,   /* '%' not followed by two hex digits */
    URL_E_CONTROL = -6,  /* an escape that decodes to a control byte (%00, %0d, %0a, ...) */
    URL_E_DOT = -7,      /* a "." or ".." path segment, literal or encoded */
};

/* Checks p[0..n). Returns URL_OK or a negative URL_E_*. */
int url_check(const char *p, size_t n);
/* The same with another length limit (a route target's path + a call's url). */
int url_check_max(const char *p, size_t n, size_t max);
/* A short reason for an error code, for error messages. */
const char *url_strerror(int err);

#endif
