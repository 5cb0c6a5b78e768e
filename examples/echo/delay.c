/* delay.c — a deadline heap plus an epoll set watching parked sockets for a
 * hang-up, served by one thread.
 *
 * Threads: MHD workers call delay_park(); the delay thread owns the rest. The
 * heap is shared, so it sits behind `mu`, but only /slow requests take that
 * lock, never the /echo hot path. Only the delay thread removes items, deletes
 * their epoll registrations and resumes connections; that is what makes an
 * epoll event's `data.ptr` safe to follow: a registered item is still parked,
 * so its connection (and the state it is embedded in) cannot have been freed.
 *
 * Lock order: `mu`, then MHD's internal mutex (MHD_suspend_connection and
 * MHD_resume_connection are both called with `mu` held). */
#include "delay.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define NOT_PARKED ((size_t)-1)
#define MAX_EVENTS 64

struct delay {
  pthread_mutex_t mu;
  struct delay_item **heap; /* min-heap on due_ms; guarded by mu */
  size_t n, cap;            /* guarded by mu */
  bool stopping;            /* guarded by mu */
  int epfd;                 /* parked sockets (EPOLLRDHUP) + wakefd (data.ptr NULL) */
  int wakefd;               /* eventfd: "the earliest deadline changed" or "stop" */
  pthread_t thread;
};

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wake(struct delay *d)
{
  uint64_t one = 1;
  /* EAGAIN means the counter is already non-zero: the thread will wake anyway. */
  if (write(d->wakefd, &one, sizeof one) < 0) {
  }
}

/* ---- heap (all with mu held) ---- */

static void heap_set(struct delay *d, size_t i, struct delay_item *it)
{
  d->heap[i] = it;
  it->heap_idx = i;
}

static void sift_up(struct delay *d, size_t i)
{
  struct delay_item *it = d->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (d->heap[parent]->due_ms <= it->due_ms)
      break;
    heap_set(d, i, d->heap[parent]);
    i = parent;
  }
  heap_set(d, i, it);
}

static void sift_down(struct delay *d, size_t i)
{
  struct delay_item *it = d->heap[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= d->n)
      break;
    if (child + 1 < d->n && d->heap[child + 1]->due_ms < d->heap[child]->due_ms)
      child++;
    if (it->due_ms <= d->heap[child]->due_ms)
      break;
    heap_set(d, i, d->heap[child]);
    i = child;
  }
  heap_set(d, i, it);
}

static void heap_remove(struct delay *d, struct delay_item *it)
{
  size_t i = it->heap_idx;
  struct delay_item *last = d->heap[--d->n];
  it->heap_idx = NOT_PARKED;
  if (last == it)
    return;
  heap_set(d, i, last);
  if (i > 0 && d->heap[(i - 1) / 2]->due_ms > last->due_ms)
    sift_up(d, i);
  else
    sift_down(d, i);
}

/* Takes `it` out of everything we track and hands the connection back to MHD.
 * The epoll deletion must come first: after the resume MHD may close the fd and
 * the number may be reused by a new connection. */
static void finish(struct delay *d, struct delay_item *it, enum delay_outcome outcome)
{
  if (it->heap_idx != NOT_PARKED)
    heap_remove(d, it);
  epoll_ctl(d->epfd, EPOLL_CTL_DEL, it->fd, NULL);
  it->outcome = outcome;
  MHD_resume_connection(it->conn);
}

static void *delay_main(void *arg)
{
  struct delay *d = arg;
  struct epoll_event evs[MAX_EVENTS];

  pthread_mutex_lock(&d->mu);
  while (!d->stopping) {
    uint64_t now = now_ms();
    while (d->n > 0 && d->heap[0]->due_ms <= now)
      finish(d, d->heap[0], DELAY_DUE);

    int timeout = -1;
    if (d->n > 0) {
      uint64_t left = d->heap[0]->due_ms - now;
      timeout = left > 60000 ? 60000 : (int)left;
    }
    pthread_mutex_unlock(&d->mu);
    int nev = epoll_wait(d->epfd, evs, MAX_EVENTS, timeout);
    pthread_mutex_lock(&d->mu);

    for (int i = 0; i < nev; i++) {
      struct delay_item *it = evs[i].data.ptr;
      if (it == NULL) {
        uint64_t v;
        if (read(d->wakefd, &v, sizeof v) < 0) {
          /* EAGAIN: already drained */
        }
      } else if (it->heap_idx != NOT_PARKED) {
        finish(d, it, DELAY_HANGUP);
      }
    }
  }
  while (d->n > 0)
    finish(d, d->heap[0], DELAY_SHUTDOWN);
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

struct delay *delay_new(void)
{
  struct delay *d = calloc(1, sizeof *d);
  if (d == NULL)
    return NULL;
  d->epfd = d->wakefd = -1;
  int err = pthread_mutex_init(&d->mu, NULL);
  if (err)
    goto fail_free;
  d->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (d->epfd < 0)
    goto fail_errno;
  d->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (d->wakefd < 0)
    goto fail_errno;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->wakefd, &ev) < 0)
    goto fail_errno;
  err = pthread_create(&d->thread, NULL, delay_main, d);
  if (err)
    goto fail_fds;
  return d;

fail_errno:
  err = errno;
fail_fds:
  if (d->wakefd >= 0)
    close(d->wakefd);
  if (d->epfd >= 0)
    close(d->epfd);
  pthread_mutex_destroy(&d->mu);
fail_free:
  free(d);
  errno = err;
  return NULL;
}

int delay_park(struct delay *d, struct delay_item *it,
               struct MHD_Connection *conn, int fd, unsigned ms)
{
  pthread_mutex_lock(&d->mu);
  if (d->stopping) {
    pthread_mutex_unlock(&d->mu);
    errno = ECANCELED;
    return -1;
  }
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 64;
    struct delay_item **heap = realloc(d->heap, cap * sizeof *heap);
    if (heap == NULL) {
      pthread_mutex_unlock(&d->mu);
      errno = ENOMEM;
      return -1;
    }
    d->heap = heap;
    d->cap = cap;
  }
  /* Suspend before the item becomes visible to the delay thread, which may
   * resume it as soon as we unlock (even before our caller returns to MHD,
   * which MHD allows). */
  MHD_suspend_connection(conn);
  it->conn = conn;
  it->fd = fd;
  it->due_ms = now_ms() + ms;
  it->outcome = DELAY_PENDING;
  d->heap[d->n] = it;
  d->n++;
  sift_up(d, d->n - 1);
  /* Level-triggered: a peer that hung up before we got here is reported on the
   * next epoll_wait. If the registration fails we only lose early hang-up
   * detection; the handler still checks the socket when the deadline passes. */
  struct epoll_event ev = {.events = EPOLLRDHUP, .data.ptr = it};
  epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev);
  if (it->heap_idx == 0)
    wake(d);
  pthread_mutex_unlock(&d->mu);
  return 0;
}

void delay_stop(struct delay *d)
{
  pthread_mutex_lock(&d->mu);
  bool was_stopping = d->stopping;
  d->stopping = true;
  wake(d);
  pthread_mutex_unlock(&d->mu);
  if (!was_stopping)
    pthread_join(d->thread, NULL);
}

void delay_free(struct delay *d)
{
  if (d == NULL)
    return;
  close(d->wakefd);
  close(d->epfd);
  pthread_mutex_destroy(&d->mu);
  free(d->heap);
  free(d);
}
