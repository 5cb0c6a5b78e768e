/* lib-floor: a process that loads exactly the shared libraries micro-sidecar
 * loads (libwebsockets, libmicrohttpd, libyaml, libev and what they pull in:
 * OpenSSL, GnuTLS, ...) and then does nothing. Its RSS is the floor under the
 * sidecar's: what the dynamic loader and the libraries' constructors cost before
 * one line of our code runs (bench/suite.js reports it beside the sidecar's). */
#include <unistd.h>

int main(void)
{
    pause();
    return 0;
}
