/* utf8: strict UTF-8 decoding (RFC 3629: no overlongs, surrogates or code points past
 * U+10FFFF) and the code points that must never reach a terminal or a log viewer as
 * is. Used by the logger (escaping), the handshake checks (namespaces) and the
 * WebSocket close/text checks. */
#ifndef MICRO_UTF8_H
#define MICRO_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length (1-4) of the valid sequence at s[0..n) and its code point in *cp, or 0 if
 * s does not start with one (n == 0 included). */
size_t utf8_decode(const char *s, size_t n, unsigned *cp);

/* C0 controls and DEL, C1 controls, U+2028/U+2029 (line ends in JavaScript) and the
 * bidirectional controls that reorder what a reader sees (U+061C, U+200E/200F,
 * U+202A-202E, U+2066-2069), and U+FEFF. */
bool utf8_is_control(unsigned cp);

/* Whether s[0..n) is valid UTF-8 (NUL bytes included), as RFC 6455 §8.1 asks of text. */
bool utf8_valid(const char *s, size_t n);

/* Whether s[0..n) is valid UTF-8 holding no utf8_is_control() code point: safe to
 * print, to put in JSON, a Prometheus label or a log line. */
bool utf8_valid_text(const char *s, size_t n);

/* Incremental validation of one UTF-8 text split at arbitrary bytes (WebSocket
 * fragments, reads): zero it (or utf8_stream_reset) at the start of a text. */
typedef struct utf8_stream {
    unsigned char need;   /* continuation bytes still expected */
    unsigned char lo, hi; /* bounds of the next one (overlongs, surrogates, > U+10FFFF) */
} utf8_stream_t;

void utf8_stream_reset(utf8_stream_t *st);
/* false as soon as p[0..n) cannot continue a valid text. */
bool utf8_stream_feed(utf8_stream_t *st, const void *p, size_t n);
/* Whether the text may end here (no sequence left open). */
bool utf8_stream_complete(const utf8_stream_t *st);

#endif
