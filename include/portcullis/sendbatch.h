/* sendbatch.h: many sockets' sends in one system call (io_uring).
 *
 * Why: a proxy's event loop wakes with a batch of ready sockets and ends
 * the batch with one send per socket that has output. Each send(2) is a
 * system call, and on loopback each one wakes its reader, which can take
 * the CPU from the proxy right at that call's return: the reader then
 * finds one response, sleeps again, and the next send wakes it again. One
 * io_uring_enter carrying every send of the batch costs one kernel entry
 * and lets each reader find all of its data when it runs.
 *
 * The sends are non-blocking (MSG_DONTWAIT): a socket whose send buffer is
 * full gets -EAGAIN in its result, as send(2) would, and nothing stays in
 * flight after pc_sendbatch_run returns; the caller's buffers need only
 * live until then. Where io_uring is missing or forbidden (old kernel,
 * kernel.io_uring_disabled, a seccomp filter), where a check at creation
 * finds that a send to a full socket does not fail at once (a kernel that
 * would park it and make the event loop wait), or where
 * PORTCULLIS_NO_URING is set in the environment, pc_sendbatch_new returns
 * NULL and the caller sends one socket at a time. */
#ifndef PORTCULLIS_SENDBATCH_H
#define PORTCULLIS_SENDBATCH_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct pc_sendbatch pc_sendbatch;

#define PC_SENDBATCH_IOV 16 /* iovecs per send */

/* A batch of up to max sends (1..4096). NULL when io_uring is unusable
 * here; *why (optional) then names the reason. */
pc_sendbatch *pc_sendbatch_new(unsigned max, const char **why);
void pc_sendbatch_free(pc_sendbatch *b);

/* Queues a send of iov[0..n) (1 <= n <= PC_SENDBATCH_IOV; the iovecs are
 * copied, the bytes are not) on fd. Returns its index in the batch, or -1
 * when the batch is full or n is out of range. */
int pc_sendbatch_add(pc_sendbatch *b, int fd, const struct iovec *iov, int n);

/* Number of sends queued. */
unsigned pc_sendbatch_count(const pc_sendbatch *b);

/* Submits every queued send in one system call and waits for all of their
 * results: res[i] is the byte count of send i, -errno as send(2) would
 * give it, or -ECANCELED for a send that never reached the kernel (it
 * refused the submission: the caller sends that socket itself). Returns
 * the number of results (the batch is then empty), or -EINVAL for a dead
 * batch. */
int pc_sendbatch_run(pc_sendbatch *b, ssize_t *res);

/* 0 once the kernel refused a submission: the ring is gone, and the
 * caller frees the batch and sends one socket at a time from then on. */
int pc_sendbatch_live(const pc_sendbatch *b);

#endif
