/* test_sendbatch.c: net/sendbatch.c, many sockets' sends in one
 * io_uring_enter. Checked from the receiving side: every byte arrives in
 * order on its own socket; a socket with a full send buffer gets -EAGAIN at
 * once (the run never waits for room and nothing stays in flight); a peer
 * that is gone gives the error send(2) gives; the batch refuses more sends
 * than it holds and more iovecs than a send takes; PORTCULLIS_NO_URING
 * turns it off. Where the kernel forbids io_uring the tests that need a
 * ring are skipped with the reason, not passed. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portcullis/sendbatch.h"

static pc_sendbatch *batch_or_skip(unsigned max)
{
    const char *why = NULL;
    unsetenv("PORTCULLIS_NO_URING");
    pc_sendbatch *b = pc_sendbatch_new(max, &why);
    if (!b)
        cr_skip_test("io_uring unavailable here: %s", why ? why : "?");
    return b;
}

static void pair(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    cr_assert_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
}

static size_t drain(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n <= 0)
            return got;
        got += (size_t)n;
    }
}

Test(sendbatch, many_sockets_one_run_every_byte_in_order)
{
    pc_sendbatch *b = batch_or_skip(8);
    int sv[8][2];
    char msg[8][64];
    for (int i = 0; i < 8; i++) {
        pair(sv[i]);
        /* three iovecs for the even ones, one for the odd ones */
        snprintf(msg[i], sizeof msg[i], "socket %d says hello", i);
        size_t len = strlen(msg[i]);
        struct iovec iov[3];
        int k = 1;
        if (i % 2 == 0) {
            iov[0] = (struct iovec){msg[i], 3};
            iov[1] = (struct iovec){msg[i] + 3, 4};
            iov[2] = (struct iovec){msg[i] + 7, len - 7};
            k = 3;
        } else {
            iov[0] = (struct iovec){msg[i], len};
        }
        cr_assert_eq(pc_sendbatch_add(b, sv[i][0], iov, k), i);
    }
    cr_assert_eq(pc_sendbatch_count(b), 8);
    ssize_t res[8];
    cr_assert_eq(pc_sendbatch_run(b, res), 8);
    cr_assert_eq(pc_sendbatch_count(b), 0);
    for (int i = 0; i < 8; i++) {
        char got[128];
        size_t n = drain(sv[i][1], got, sizeof got);
        cr_assert_eq(res[i], (ssize_t)strlen(msg[i]), "send %d: %zd", i,
                     res[i]);
        cr_assert_eq(n, strlen(msg[i]));
        cr_assert_eq(memcmp(got, msg[i], n), 0);
        close(sv[i][0]);
        close(sv[i][1]);
    }
    /* the batch is reusable */
    int s2[2];
    pair(s2);
    struct iovec one = {"again", 5};
    cr_assert_eq(pc_sendbatch_add(b, s2[0], &one, 1), 0);
    ssize_t r;
    cr_assert_eq(pc_sendbatch_run(b, &r), 1);
    cr_assert_eq(r, 5);
    close(s2[0]);
    close(s2[1]);
    pc_sendbatch_free(b);
}

Test(sendbatch, full_socket_gets_eagain_without_waiting)
{
    pc_sendbatch *b = batch_or_skip(4);
    int full[2], ok[2];
    pair(full);
    pair(ok);
    static char junk[65536];
    memset(junk, 'j', sizeof junk);
    while (write(full[0], junk, sizeof junk) > 0)
        ;
    cr_assert(errno == EAGAIN || errno == EWOULDBLOCK);
    struct iovec a = {junk, 1000}, c = {"fine", 4};
    cr_assert_eq(pc_sendbatch_add(b, full[0], &a, 1), 0);
    cr_assert_eq(pc_sendbatch_add(b, ok[0], &c, 1), 1);
    ssize_t res[2];
    cr_assert_eq(pc_sendbatch_run(b, res), 2); /* would hang if parked */
    cr_assert_eq(res[0], -EAGAIN);
    cr_assert_eq(res[1], 4);
    char got[8];
    cr_assert_eq(drain(ok[1], got, sizeof got), 4);
    /* room again: the same socket takes the send */
    static char sink[1 << 20];
    drain(full[1], sink, sizeof sink);
    cr_assert_eq(pc_sendbatch_add(b, full[0], &a, 1), 0);
    cr_assert_eq(pc_sendbatch_run(b, res), 1);
    cr_assert_eq(res[0], 1000);
    close(full[0]);
    close(full[1]);
    close(ok[0]);
    close(ok[1]);
    pc_sendbatch_free(b);
}

Test(sendbatch, gone_peer_gives_epipe_not_a_signal)
{
    pc_sendbatch *b = batch_or_skip(2);
    int sv[2];
    pair(sv);
    close(sv[1]);
    struct iovec v = {"late", 4};
    cr_assert_eq(pc_sendbatch_add(b, sv[0], &v, 1), 0);
    ssize_t r;
    cr_assert_eq(pc_sendbatch_run(b, &r), 1); /* MSG_NOSIGNAL: no SIGPIPE */
    cr_assert_eq(r, -EPIPE);
    close(sv[0]);
    pc_sendbatch_free(b);
}

Test(sendbatch, bounds)
{
    pc_sendbatch *b = batch_or_skip(2);
    int sv[2];
    pair(sv);
    struct iovec v[PC_SENDBATCH_IOV + 1];
    for (int i = 0; i <= PC_SENDBATCH_IOV; i++)
        v[i] = (struct iovec){"x", 1};
    cr_assert_eq(pc_sendbatch_add(b, sv[0], v, 0), -1);
    cr_assert_eq(pc_sendbatch_add(b, sv[0], v, PC_SENDBATCH_IOV + 1), -1);
    cr_assert_eq(pc_sendbatch_add(b, sv[0], v, PC_SENDBATCH_IOV), 0);
    cr_assert_eq(pc_sendbatch_add(b, sv[0], v, 1), 1);
    cr_assert_eq(pc_sendbatch_add(b, sv[0], v, 1), -1); /* full */
    ssize_t res[2];
    cr_assert_eq(pc_sendbatch_run(b, res), 2);
    cr_assert_eq(res[0], PC_SENDBATCH_IOV);
    cr_assert_eq(res[1], 1);
    char got[64];
    cr_assert_eq(drain(sv[1], got, sizeof got), PC_SENDBATCH_IOV + 1);
    cr_assert_eq(pc_sendbatch_run(b, res), 0); /* empty batch: no-op */
    close(sv[0]);
    close(sv[1]);
    pc_sendbatch_free(b);
    const char *why = NULL;
    cr_assert_null(pc_sendbatch_new(0, &why));
    cr_assert_not_null(why);
    cr_assert_null(pc_sendbatch_new(4097, &why));
}

Test(sendbatch, env_turns_it_off)
{
    const char *why = NULL;
    setenv("PORTCULLIS_NO_URING", "1", 1);
    cr_assert_null(pc_sendbatch_new(4, &why));
    cr_assert_not_null(why);
    cr_assert(strstr(why, "PORTCULLIS_NO_URING") != NULL);
    setenv("PORTCULLIS_NO_URING", "0", 1); /* "0" means on */
    pc_sendbatch *b = pc_sendbatch_new(4, &why);
    unsetenv("PORTCULLIS_NO_URING");
    if (!b)
        cr_skip_test("io_uring unavailable here: %s", why ? why : "?");
    pc_sendbatch_free(b);
}
