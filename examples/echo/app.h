/* app.h — micro-echo's routes and counters, written as the three libmicrohttpd
 * callbacks main.c hands to MHD_start_daemon(). Each callback's `cls` is the
 * struct echo_app. Thread-safe: the counters are atomics and per-request state
 * lives in the connection's own context. */
#ifndef MICRO_ECHO_APP_H
#define MICRO_ECHO_APP_H

#include <microhttpd.h>

#include "delay.h"

/* Requests bodies above this get 413. */
#define ECHO_MAX_BODY ((size_t)4 << 20)

struct echo_app;

/* `name` is copied; `delay` is borrowed and must outlive the app. NULL on ENOMEM. */
struct echo_app *echo_app_new(const char *name, struct delay *delay);
void echo_app_free(struct echo_app *app);

/* MHD_AccessHandlerCallback */
enum MHD_Result echo_app_request(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls);
/* MHD_OPTION_NOTIFY_COMPLETED */
void echo_app_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                        enum MHD_RequestTerminationCode toe);
/* MHD_OPTION_NOTIFY_CONNECTION: allocates and frees the per-connection state. */
void echo_app_connection(void *cls, struct MHD_Connection *conn,
                         void **socket_context,
                         enum MHD_ConnectionNotificationCode toe);

/* Requests that delay_park() suspended and that MHD has not yet handed back
 * to us. Shutdown waits for this to reach 0 before MHD_stop_daemon(). */
unsigned echo_app_parked(const struct echo_app *app);

#endif
