/* sendbatch.c: many sockets' sends in one io_uring_enter (see sendbatch.h).
 *
 * DESIGN: a ring with as many entries as the batch holds; add() fills one
 * slot (msghdr and a copy of the iovecs, which must outlive the
 * submission) and one SQE per send; run() submits them all and waits for
 * as many completions in the same io_uring_enter. MSG_DONTWAIT makes the
 * kernel answer -EAGAIN instead of parking a send on a full socket, so
 * every send completes inside that call (the wait is for form's sake) and
 * nothing refers to the caller's buffers afterwards. A submission the
 * kernel refuses tears the ring down: SQEs that were prepared but not
 * consumed must never reach the kernel later with stale pointers. */

#include "portcullis/sendbatch.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portcullis/util.h"

struct slot {
    struct msghdr msg;
    struct iovec iov[PC_SENDBATCH_IOV];
};

struct pc_sendbatch {
    struct io_uring ring;
    int live; /* ring initialised and usable */
    unsigned max, n;
    struct slot *slots;
};

#define SEND_FLAGS (MSG_DONTWAIT | MSG_NOSIGNAL)

/* The whole design rests on a full socket answering -EAGAIN inside the
 * submitting call. A kernel that cannot send through io_uring, or that
 * parks such a send until the socket drains (the event loop would then
 * wait in pc_sendbatch_run), is found out here, once per ring: a send to a
 * socket filled to EAGAIN must complete with -EAGAIN within 200 ms. */
static int sends_fail_fast(struct io_uring *ring, const char **why)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    if (!p) {
        *why = "io_uring has no opcode probe (kernel before 5.6)";
        return 0;
    }
    int ops = io_uring_opcode_supported(p, IORING_OP_SEND) &&
              io_uring_opcode_supported(p, IORING_OP_SENDMSG);
    io_uring_free_probe(p);
    if (!ops) {
        *why = "io_uring cannot send here";
        return 0;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0) {
        *why = "no socketpair for the io_uring check";
        return 0;
    }
    static char junk[4096]; /* static: outlives a parked send */
    while (write(sv[0], junk, sizeof junk) > 0)
        ;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    int res = 1;
    if (sqe) {
        io_uring_prep_send(sqe, sv[0], junk, sizeof junk, SEND_FLAGS);
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 200000000};
        struct io_uring_cqe *cqe = NULL;
        int r = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
        if (r >= 0 && cqe) {
            res = cqe->res;
            io_uring_cqe_seen(ring, cqe);
        }
    }
    close(sv[0]);
    close(sv[1]);
    if (res != -EAGAIN) {
        *why = "io_uring does not fail a send to a full socket at once";
        return 0;
    }
    return 1;
}

pc_sendbatch *pc_sendbatch_new(unsigned max, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (max == 0 || max > 4096) {
        *why = "batch size out of range";
        return NULL;
    }
    const char *off = getenv("PORTCULLIS_NO_URING");
    if (off && *off && strcmp(off, "0") != 0) {
        *why = "PORTCULLIS_NO_URING is set";
        return NULL;
    }
    pc_sendbatch *b = pc_xcalloc(1, sizeof *b);
    int r = io_uring_queue_init(max, &b->ring, 0);
    if (r < 0) {
        *why = strerror(-r);
        free(b);
        return NULL;
    }
    if (!sends_fail_fast(&b->ring, why)) {
        io_uring_queue_exit(&b->ring);
        free(b);
        return NULL;
    }
    b->live = 1;
    b->max = max;
    b->slots = pc_xcalloc(max, sizeof *b->slots);
    return b;
}

void pc_sendbatch_free(pc_sendbatch *b)
{
    if (!b)
        return;
    if (b->live)
        io_uring_queue_exit(&b->ring);
    free(b->slots);
    free(b);
}

int pc_sendbatch_live(const pc_sendbatch *b)
{
    return b && b->live;
}

unsigned pc_sendbatch_count(const pc_sendbatch *b)
{
    return b ? b->n : 0;
}

int pc_sendbatch_add(pc_sendbatch *b, int fd, const struct iovec *iov, int n)
{
    if (!b || !b->live || b->n >= b->max || n < 1 || n > PC_SENDBATCH_IOV)
        return -1;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
    if (!sqe)
        return -1;
    unsigned i = b->n++;
    struct slot *sl = &b->slots[i];
    if (n == 1) {
        io_uring_prep_send(sqe, fd, iov[0].iov_base, iov[0].iov_len,
                           SEND_FLAGS);
    } else {
        memcpy(sl->iov, iov, (size_t)n * sizeof *iov);
        memset(&sl->msg, 0, sizeof sl->msg);
        sl->msg.msg_iov = sl->iov;
        sl->msg.msg_iovlen = (size_t)n;
        io_uring_prep_sendmsg(sqe, fd, &sl->msg, SEND_FLAGS);
    }
    io_uring_sqe_set_data64(sqe, i);
    return (int)i;
}

static void teardown(pc_sendbatch *b)
{
    io_uring_queue_exit(&b->ring);
    b->live = 0;
    b->n = 0;
}

int pc_sendbatch_run(pc_sendbatch *b, ssize_t *res)
{
    if (!b || !b->live)
        return -EINVAL;
    unsigned n = b->n;
    if (n == 0)
        return 0;
    for (unsigned i = 0; i < n; i++)
        res[i] = -ECANCELED;
    int r;
    do {
        r = io_uring_submit_and_wait(&b->ring, n);
    } while (r == -EINTR);
    unsigned taken = r > 0 ? (unsigned)r : 0;
    unsigned got = 0;
    while (got < taken) {
        struct io_uring_cqe *cqe;
        int w = io_uring_peek_cqe(&b->ring, &cqe);
        if (w == -EAGAIN)
            w = io_uring_wait_cqe(&b->ring, &cqe);
        if (w == -EINTR)
            continue;
        if (w < 0) {
            /* Taken but with no result: whether it went out is unknown,
             * so its socket must fail rather than send again. */
            for (unsigned i = 0; i < n; i++)
                if (res[i] == -ECANCELED)
                    res[i] = i < taken ? -EIO : -ECANCELED;
            teardown(b);
            return (int)n;
        }
        uint64_t i = io_uring_cqe_get_data64(cqe);
        if (i < n)
            res[i] = cqe->res;
        io_uring_cqe_seen(&b->ring, cqe);
        got++;
    }
    if (taken != n) {
        /* Refused, or only partly taken: the rest must never reach the
         * kernel later with stale pointers. Their results stay
         * -ECANCELED: not sent. */
        teardown(b);
        return (int)n;
    }
    b->n = 0;
    return (int)n;
}
