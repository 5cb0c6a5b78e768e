#include "wsframe.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ---- the opening handshake ---- */

/* lws_b64_encode_string wants room for more than the text and its NUL (it
 * refuses to terminate an exactly sized buffer), hence the spare bytes below. */
void wsf_handshake_key(char out[25], const unsigned char rnd[16])
{
    char b[32];
    lws_b64_encode_string((const char *)rnd, 16, b, sizeof(b));
    memcpy(out, b, 24);
    out[24] = '\0';
}

size_t wsf_handshake_request(char *out, size_t cap, const char *path, const char *host,
                             const char *key)
{
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "\r\n",
                     path, host, key);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Whether the comma-separated header value v (length n) holds token, any case. */
static bool has_token(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i < n;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && !strncasecmp(v + s, token, tl))
            return true;
    }
    return false;
}

long wsf_handshake_response(const char *buf, size_t n, const char *key, const char **why)
{
    const char *end = NULL;
    for (size_t i = 3; i < n; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
            end = buf + i + 1;
            break;
        }
    if (!end)
        return 0;
    *why = "not an HTTP/1.1 101 answer";
    if (end - buf < 12 || strncmp(buf, "HTTP/1.1 ", 9))
        return -1;
    if (strncmp(buf + 9, "101", 3) || (buf[12] != ' ' && buf[12] != '\r')) {
        *why = "the server refused the WebSocket upgrade";
        return -1;
    }
    /* the accept value the server must send for our key */
    char cat[24 + sizeof(GUID)];
    unsigned char sha[20];
    char want[40];
    snprintf(cat, sizeof(cat), "%s%s", key, GUID);
    lws_SHA1((const unsigned char *)cat, strlen(cat), sha);
    lws_b64_encode_string((const char *)sha, 20, want, sizeof(want));

    bool upgrade = false, connection = false, accept = false;
    const char *p = memchr(buf, '\n', (size_t)(end - buf)) + 1;
    while (p < end - 2) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon) {
            *why = "a malformed header line";
            return -1;
        }
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        const char *ve = eol;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vl = (size_t)(ve - v);
#define IS(name) (nl == sizeof(name) - 1 && !strncasecmp(p, name, nl))
        if (IS("Upgrade")) {
            upgrade = vl == 9 && !strncasecmp(v, "websocket", 9);
        } else if (IS("Connection")) {
            connection = has_token(v, vl, "upgrade");
        } else if (IS("Sec-WebSocket-Accept")) {
            accept = vl == strlen(want) && !memcmp(v, want, vl);
            if (!accept) {
                *why = "Sec-WebSocket-Accept does not match our key";
                return -1;
            }
        } else if (IS("Sec-WebSocket-Extensions") || IS("Sec-WebSocket-Protocol")) {
            *why = "the server chose an extension or subprotocol we did not offer";
            return -1;
        }
#undef IS
        p = eol + 2;
    }
    if (!upgrade || !connection || !accept) {
        *why = "Upgrade, Connection or Sec-WebSocket-Accept missing";
        return -1;
    }
    return (long)(end - buf);
}

/* ---- frames to the server ---- */

size_t wsf_header(unsigned char *h, int op, uint64_t len, const unsigned char key[4])
{
    size_t n;
    h[0] = (unsigned char)(0x80 | (op & 0x0f));
    if (len < 126) {
        h[1] = (unsigned char)(0x80 | len);
        n = 2;
    } else if (len <= 0xffff) {
        h[1] = 0x80 | 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        n = 4;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)(len >> (56 - 8 * i));
        n = 10;
    }
    memcpy(h + n, key, 4);
    return n + 4;
}

void wsf_mask(unsigned char *p, size_t n, const unsigned char key[4])
{
    uint32_t k4;
    memcpy(&k4, key, 4);
    const uint64_t k8 = ((uint64_t)k4 << 32) | k4; /* key bytes 0-3, 0-3 in memory order */
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= k8;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] ^= key[i & 3];
}

/* ---- frames from the server ---- */

void wsf_rx_init(wsf_rx_t *rx)
{
    memset(rx, 0, sizeof(*rx));
}

/* RFC 6455 §7.4: the codes a close frame may carry (1005, 1006 and 1015 are for
 * reporting only; 1012-1014 are IANA-registered since). */
bool wsf_close_code_ok(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* A complete header is in rx->hdr: check it and start the frame. */
static int start_frame(wsf_rx_t *rx)
{
    unsigned char b0 = rx->hdr[0];
    unsigned l7 = rx->hdr[1] & 0x7f;
    uint64_t len = l7;
    if (b0 & 0x70) /* RSV bits: no extension was negotiated */
        return WSF_CLOSE_PROTOCOL;
    if (l7 == 126) {
        len = ((uint64_t)rx->hdr[2] << 8) | rx->hdr[3];
    } else if (l7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | rx->hdr[2 + i];
        if (len >> 63)
            return WSF_CLOSE_PROTOCOL;
    }
    int op = b0 & 0x0f;
    bool fin = b0 & 0x80;
    if (op & 0x08) {
        if (!fin || len > sizeof(rx->ctl) ||
            (op != WSF_OP_CLOSE && op != WSF_OP_PING && op != WSF_OP_PONG))
            return WSF_CLOSE_PROTOCOL;
        rx->ctllen = 0;
    } else if (op == WSF_OP_CONT) {
        if (!rx->msg)
            return WSF_CLOSE_PROTOCOL;
    } else if (op == WSF_OP_TEXT || op == WSF_OP_BINARY) {
        if (rx->msg) /* a new message inside a fragmented one */
            return WSF_CLOSE_PROTOCOL;
        rx->msg = (uint8_t)op;
        rx->msg_first = true;
        rx->msg_len = 0;
        utf8_stream_reset(&rx->utf8);
    } else {
        return WSF_CLOSE_PROTOCOL;
    }
    if (!(op & 0x08)) {
        /* judged on the header: a frame that could never fit is not waited for */
        if (rx->max_msg && len > rx->max_msg - rx->msg_len)
            return WSF_CLOSE_TOO_BIG;
        rx->msg_len += len;
    }
    rx->op = (uint8_t)op;
    rx->fin = fin;
    rx->remain = len;
    rx->in_payload = true;
    rx->hlen = 0;
    return 0;
}

int wsf_rx_feed(wsf_rx_t *rx, const unsigned char *p, size_t n, const wsf_rx_ops_t *ops, void *arg)
{
    int rc;
    while (n || (rx->in_payload && !rx->remain)) {
        if (!rx->in_payload) {
            rx->hdr[rx->hlen++] = *p++;
            n--;
            if (rx->hlen < 2)
                continue;
            if (rx->hdr[1] & 0x80) /* a server must not mask */
                return WSF_CLOSE_PROTOCOL;
            unsigned l7 = rx->hdr[1] & 0x7f;
            if (rx->hlen < 2u + (l7 == 126 ? 2u : l7 == 127 ? 8u : 0u))
                continue;
            if ((rc = start_frame(rx)))
                return rc;
            continue;
        }
        size_t take = n < rx->remain ? n : (size_t)rx->remain;
        rx->remain -= take;
        if (rx->op & 0x08) {
            memcpy(rx->ctl + rx->ctllen, p, take);
            rx->ctllen += take;
        } else {
            bool first = rx->msg_first;
            rx->msg_first = false;
            if (rx->msg == WSF_OP_TEXT &&
                (!utf8_stream_feed(&rx->utf8, p, take) ||
                 (rx->fin && !rx->remain && !utf8_stream_complete(&rx->utf8))))
                return WSF_CLOSE_INVALID;
            if ((rc = ops->data(arg, p, take, first, rx->fin, rx->remain)))
                return rc;
        }
        p += take;
        n -= take;
        if (!rx->remain) {
            rx->in_payload = false;
            if (rx->op & 0x08) {
                if (rx->op == WSF_OP_CLOSE && rx->ctllen) {
                    if (rx->ctllen < 2 || !wsf_close_code_ok((unsigned)rx->ctl[0] << 8 | rx->ctl[1]))
                        return WSF_CLOSE_PROTOCOL;
                    if (!utf8_valid((const char *)rx->ctl + 2, rx->ctllen - 2))
                        return WSF_CLOSE_INVALID;
                }
                if ((rc = ops->control(arg, rx->op, rx->ctl, rx->ctllen)))
                    return rc;
            } else if (rx->fin) {
                rx->msg = 0;
            }
        }
    }
    return 0;
}
