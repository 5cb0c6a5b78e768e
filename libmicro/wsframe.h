/* wsframe: the client half of RFC 6455 — the opening handshake and the frames a
 * client sends and receives — for outbound mesh and registry connections, which
 * run on lws raw sockets.
 *
 * Why not lws's own client: libwebsockets 4.1 (Debian 12) parses every byte of a
 * received payload through a per-byte state machine call and masks every sent
 * byte with its mask index reloaded from the wsi; on the caller sidecar that was
 * 22 % of its CPU at 64 concurrent calls (docs/BENCHMARKS.md). Here a received
 * payload is handed on in one piece and a sent one is masked 8 bytes at a time.
 * Servers (inbound connections, the registry) stay on lws's WebSocket server.
 *
 * Pure functions over bytes: no sockets, no allocation; wsconn.c is the glue. */
#ifndef MICRO_WSFRAME_H
#define MICRO_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "utf8.h"

enum {
    WSF_OP_CONT = 0x0, WSF_OP_TEXT = 0x1, WSF_OP_BINARY = 0x2,
    WSF_OP_CLOSE = 0x8, WSF_OP_PING = 0x9, WSF_OP_PONG = 0xa,
};

/* Close codes we send when the server breaks the protocol. */
#define WSF_CLOSE_NORMAL   1000
#define WSF_CLOSE_PROTOCOL 1002
#define WSF_CLOSE_INVALID  1007 /* a text message or close reason that is not UTF-8 */
#define WSF_CLOSE_TOO_BIG  1009
#define WSF_CLOSE_TRY_AGAIN 1013 /* a budget of the process is used up */

/* ---- the opening handshake ---- */

/* Sec-WebSocket-Key: base64 of 16 random bytes (24 characters + NUL). */
void wsf_handshake_key(char out[25], const unsigned char rnd[16]);
/* Writes the GET request for path (with its query) to host into out; returns its
 * length, or 0 if it does not fit. */
size_t wsf_handshake_request(char *out, size_t cap, const char *path, const char *host,
                             const char *key);
/* Looks for the end of the server's answer in buf. Returns the length of the
 * header block (bytes after it are frames), 0 when more bytes are needed, -1 when
 * it is not a valid switch to WebSocket for key: why says what was wrong. */
long wsf_handshake_response(const char *buf, size_t n, const char *key, const char **why);

/* ---- frames to the server ---- */

/* Largest header: 2 + 8 (64-bit length) + 4 (mask key). */
#define WSF_HDR_MAX 14
/* Writes the header of a masked frame with FIN set: opcode, len and key; returns
 * its length (6, 8 or 14). */
size_t wsf_header(unsigned char *h, int op, uint64_t len, const unsigned char key[4]);
/* XORs p with the key, as from payload offset 0. */
void wsf_mask(unsigned char *p, size_t n, const unsigned char key[4]);

/* ---- frames from the server ---- */

typedef struct wsf_rx {
    unsigned char hdr[10];  /* the header being read (a server's is unmasked) */
    unsigned      hlen;
    bool          in_payload;
    uint8_t       op;       /* the current frame's opcode */
    bool          fin;
    uint64_t      remain;   /* payload bytes of the current frame still to come */
    uint8_t       msg;      /* opcode of the message being reassembled, 0 = none */
    bool          msg_first;/* nothing of that message delivered yet */
    unsigned char ctl[125]; /* a control frame's payload */
    size_t        ctllen;
    uint64_t      max_msg;  /* largest message accepted (0 = no limit), set after init */
    uint64_t      msg_len;  /* announced length of the message so far */
    utf8_stream_t utf8;     /* a text message's UTF-8, checked as it arrives */
} wsf_rx_t;

typedef struct wsf_rx_ops {
    /* A piece of a text or binary message: first/final mark its ends, `more` is
     * how many bytes of the current frame follow (so a complete one-frame
     * message is first && final && !more). Return 0, or a close code to stop. */
    int (*data)(void *arg, const unsigned char *p, size_t n, bool first, bool final, uint64_t more);
    /* A whole control frame: close, ping or pong. Return 0, or a close code. */
    int (*control)(void *arg, int op, const unsigned char *p, size_t n);
} wsf_rx_ops_t;

void wsf_rx_init(wsf_rx_t *rx);
/* Whether a close frame may carry this code (RFC 6455 §7.4, IANA registry). */
bool wsf_close_code_ok(unsigned code);
/* Parses bytes from the server. Returns 0; or the close code to send when the
 * stream breaks RFC 6455 (WSF_CLOSE_PROTOCOL: also a close frame with a 1-byte
 * payload or a code that may not be sent); WSF_CLOSE_INVALID for a text message or
 * a close reason that is not UTF-8 (checked before any of it is delivered);
 * WSF_CLOSE_TOO_BIG as soon as a header announces more than max_msg for its
 * message (a 2^63-1 length is refused at once, not waited for); or whatever
 * non-zero value a
 * callback returned (a close code, or -1 for "stop, already handled"). After a
 * non-zero return the stream is not usable any more. */
int wsf_rx_feed(wsf_rx_t *rx, const unsigned char *p, size_t n, const wsf_rx_ops_t *ops, void *arg);

#endif
