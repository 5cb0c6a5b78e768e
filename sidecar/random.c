/* random: libwebsockets' source of random bytes, replaced.
 *
 * A WebSocket client masks every frame it sends with a fresh 4-byte key
 * (RFC 6455 §5.3), and lws 4.1 fetches each key with its own read() of
 * /dev/urandom: one system call per frame, on the hot path of every outbound
 * call. libwebsockets calls lws_get_random() through its PLT, so this definition,
 * exported from the executable (see CMakeLists.txt), takes its place: the same
 * kernel CSPRNG, read 4 KiB at a time with getrandom(2). Keys stay unpredictable;
 * the system call is paid once per ~1,000 frames. Loop thread only, like every
 * lws call. If the symbol were ever bound inside the library instead, lws keeps
 * its own implementation and nothing else changes. */
#include <errno.h>
#include <libwebsockets.h>
#include <string.h>
#include <sys/random.h>

size_t lws_get_random(struct lws_context *context, void *buf, size_t len)
{
    static unsigned char pool[4096];
    static size_t avail;
    unsigned char *out = buf;
    size_t done = 0;
    (void)context;
    while (done < len) {
        if (!avail) {
            ssize_t n = getrandom(pool, sizeof(pool), 0);
            if (n < 0 && errno == EINTR) /* a signal (SIGTERM starts the drain) */
                continue;
            if (n <= 0)
                return done; /* lws treats a short count as failure */
            avail = (size_t)n;
        }
        size_t take = len - done < avail ? len - done : avail;
        /* hand out from the end and wipe what was handed out */
        memcpy(out + done, pool + avail - take, take);
        memset(pool + avail - take, 0, take);
        avail -= take;
        done += take;
    }
    return done;
}
