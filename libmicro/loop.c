#include "loop.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t got_signal;
static struct lws_context *sig_ctx;

static void on_signal(int sig)
{
    got_signal = sig;
    if (sig_ctx)
        lws_cancel_service(sig_ctx); /* writes to lws's event pipe: async-signal-safe */
}

struct lws_context *loop_create(void)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    /* No TLS: the mesh runs inside the pod network; skipping OpenSSL and the CA
     * store keeps start-up to a few milliseconds. */
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
    info.count_threads = 1;
    info.timeout_secs = 10;
    return lws_create_context(&info);
}

void loop_install_signals(struct lws_context *ctx)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sig_ctx = ctx;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int loop_signal(void) { return got_signal; }

void loop_destroy(struct lws_context *ctx)
{
    sig_ctx = NULL;
    lws_context_destroy(ctx);
}
