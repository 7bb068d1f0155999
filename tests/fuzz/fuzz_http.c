/* fuzz_http.c: libFuzzer target for the HTTP request path: the bytes a
 * client sends, through the real connection code (http/conn.c,
 * http/request.c, llhttp, the chain), to what the gateway answers or a
 * close. One worker is built once on a fixed configuration whose routes
 * point at a closed port, so every routed request ends in a 502 from the
 * proxy after a refused connect: no upstream is needed. Each input is
 * written on a fresh loopback connection, then the client half-closes and
 * the loop runs until the gateway has closed or gone quiet. Invariants
 * (abort on failure): whatever the gateway writes starts with "HTTP/1.1 ",
 * and the connection is gone at the end (no leak across inputs). */
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portcullis/config.h"
#include "portcullis/conn.h"
#include "portcullis/tls.h"
#include "portcullis/worker.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char CONFIG[] =
    "workers: 1\n"
    "listen: [{address: 127.0.0.1:%d}]\n"
    "limits: {max_header_bytes: 4k, max_headers: 20, max_body_bytes: 8k,\n"
    "         client_header_timeout: 1s, client_body_timeout: 1s}\n"
    "log: {access: \"off\", level: error}\n"
    "trusted_proxies: [127.0.0.0/8]\n"
    "upstreams:\n"
    "  closed: {targets: [{url: http://127.0.0.1:9}], retries: 0}\n"
    "routes:\n"
    "  - {match: {path: /api, type: prefix}, upstream: closed, strip_prefix: /api}\n"
    "  - {match: {path: \"/u/{id}\", type: exact, methods: [GET]}, upstream: closed,\n"
    "     rewrite: \"/users/{id}\"}\n"
    "  - {match: {path: /v, type: prefix}, upstream: closed,\n"
    "     validate: {content_types: [application/json], max_body_bytes: 1k}}\n";

static pc_runtime rt;
static pc_worker *w;
static int lfd;

static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        abort();
    close(fd);
    return ntohs(sa.sin_port);
}

static void setup(void)
{
    pc_errors err;
    char text[sizeof CONFIG + 16];
    evthread_use_pthreads();
    pc_tls_global_init();
    pc_errors_init(&err, "fuzz");
    /* The worker's own listener is never used (inputs arrive through
     * pc_conn_accept), but a worker needs one. */
    int n = snprintf(text, sizeof text, CONFIG, free_port());
    pc_node *root = pc_node_load_string(text, (size_t)n, &err);
    pc_config *cfg = root ? pc_config_from_node(root, "fuzz", &err) : NULL;
    if (!cfg) {
        for (size_t i = 0; i < err.n; i++)
            fprintf(stderr, "%s\n", err.msgs[i]);
        abort();
    }
    pc_node_free(root);
    pc_errors_free(&err);
    rt.cfg = cfg;
    pthread_mutex_init(&rt.cfg_lock, NULL);
    rt.per_ip = pc_ipcount_new();
    w = pc_worker_new(&rt, 0, cfg);
    if (!w)
        abort();
    /* Our own listener: accepted sockets go to pc_conn_accept directly. */
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 16) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (!w)
        setup();
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(cfd, (struct sockaddr *)&sa, len) != 0)
        abort();
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int sfd = accept(lfd, (struct sockaddr *)&peer, &plen);
    if (sfd < 0)
        abort();
    atomic_fetch_add(&rt.connections, 1);
    pc_conn_accept(w, sfd, (struct sockaddr *)&peer, plen, NULL);
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(cfd, data + off, size - off);
        if (n <= 0)
            break;
        off += (size_t)n;
        event_base_loop(w->base, EVLOOP_NONBLOCK);
    }
    shutdown(cfd, SHUT_WR);
    char buf[65536];
    size_t got = 0;
    char first[9] = {0};
    for (int round = 0; round < 200 && w->nconns > 0; round++) {
        event_base_loop(w->base, EVLOOP_NONBLOCK);
        struct pollfd p = {.fd = cfd, .events = POLLIN};
        if (poll(&p, 1, 1) > 0) {
            ssize_t n = read(cfd, buf, sizeof buf);
            if (n > 0) {
                if (getenv("FUZZ_HTTP_PRINT")) /* debugging a corpus entry */
                    fwrite(buf, 1, (size_t)n, stderr);
                if (got < 9)
                    memcpy(first + got, buf, (size_t)n < 9 - got ? (size_t)n : 9 - got);
                got += (size_t)n;
            }
        }
    }
    if (got >= 9 && memcmp(first, "HTTP/1.1 ", 9) != 0)
        abort();
    while (w->conns)
        pc_conn_close_now(w->conns);
    close(cfd);
    return 0;
}
