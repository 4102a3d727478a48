// The sendfile(2) helper's loop threads (see sendfile.c for the design): each runs one epoll
// loop over the sockets of its lanes, gives a writable socket one sendfile() slice per turn (a
// splice lane: up to a slice moved from its source socket through its pipe to its socket),
// takes commands (send a range, close) from the JavaScript thread through a queue and an
// eventfd, gives up sends that made no progress for their stallMs, and queues each completion
// on the environment's thread-safe function.
#include "sendfile-loops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>

// Bytes per sendfile() call: one turn of a loop for one socket.
#define SLICE (8 << 20)
// How often a loop looks for transfers that made no progress for their stallMs.
#define STALL_CHECK_MS 100
// A loop thread only makes syscalls: a small stack is plenty.
#define STACK_BYTES (256 << 10)

void release(lane_t *lane) {
  if (atomic_fetch_sub(&lane->owners, 1) == 1) free(lane);
}

static int64_t now_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void wake(loop_t *loop) {
  uint64_t one = 1;
  // Fails only when the counter is saturated, and then the loop wakes anyway.
  ssize_t written = write(loop->wake, &one, sizeof one);
  (void)written;
}

// ---- Loop thread ----

// Frees the lane's slot and closes its descriptors; the caller holds no lock.
static void close_open_lane(lane_t *lane) {
  loop_t *loop = lane->loop;
  pthread_mutex_lock(&loop->lock);
  if (lane->prev_open) lane->prev_open->next_open = lane->next_open;
  else loop->open = lane->next_open;
  if (lane->next_open) lane->next_open->prev_open = lane->prev_open;
  pthread_mutex_unlock(&loop->lock);
  close(lane->sock);
  close(lane->file);
  if (lane->splice) {
    close(lane->pipe_read);
    close(lane->pipe_write);
  }
  atomic_fetch_sub(&loop->lanes, 1);
  atomic_fetch_sub(&loop->state->lanes, 1);
  release(lane);
}

// Ends the running send; `report` queues its completion for the JavaScript thread.
static void finish(lane_t *lane, int error, bool report) {
  loop_t *loop = lane->loop;
  if (lane->registered) {
    epoll_ctl(loop->epoll, EPOLL_CTL_DEL, lane->sock, NULL);
    if (lane->splice) epoll_ctl(loop->epoll, EPOLL_CTL_DEL, lane->file, NULL);
  }
  lane->registered = false;
  lane->ready = false;
  if (lane->prev_active) lane->prev_active->next_active = lane->next_active;
  else loop->active = lane->next_active;
  if (lane->next_active) lane->next_active->prev_active = lane->prev_active;
  lane->active = false;
  lane->error = error;
  if (!report) return;
  atomic_fetch_add(&lane->owners, 1);
  // Fails only while the environment is torn down: nobody is left to tell.
  if (napi_call_threadsafe_function(loop->state->completions, lane, napi_tsfn_nonblocking) != napi_ok) release(lane);
}

static void send_slice(lane_t *lane) {
  size_t want = lane->remaining > SLICE ? SLICE : (size_t)lane->remaining;
  ssize_t n = sendfile(lane->sock, lane->file, &lane->offset, want);
  if (n > 0) {
    lane->remaining -= n;
    lane->sent += n;
    lane->progress_at = now_ms();
    if (lane->remaining == 0) return finish(lane, 0, true);
  } else if (n == 0) {
    return finish(lane, -1, true);
  } else if (errno != EAGAIN && errno != EINTR) {
    return finish(lane, errno, true);
  }
  // More to send: the loop hears when the socket can take it (level-triggered, so a socket that
  // is still writable gets its next slice on the next turn, after the others had theirs).
  if (!lane->registered) {
    struct epoll_event event = {.events = EPOLLOUT, .data.ptr = lane};
    if (epoll_ctl(lane->loop->epoll, EPOLL_CTL_ADD, lane->sock, &event) != 0) return finish(lane, errno, true);
    lane->registered = true;
  }
}

// Registers a splice lane's two sockets, edge-triggered: every turn moves bytes until both sides
// would block (or the slice is used up), so an edge on either end is enough to go on.
static bool register_splice(lane_t *lane) {
  struct epoll_event out = {.events = EPOLLOUT | EPOLLET, .data.ptr = lane};
  struct epoll_event in = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = lane};
  if (epoll_ctl(lane->loop->epoll, EPOLL_CTL_ADD, lane->sock, &out) != 0) return false;
  if (epoll_ctl(lane->loop->epoll, EPOLL_CTL_ADD, lane->file, &in) != 0) {
    int error = errno;
    epoll_ctl(lane->loop->epoll, EPOLL_CTL_DEL, lane->sock, NULL);
    errno = error;
    return false;
  }
  lane->registered = true;
  return true;
}

// One turn of a splice lane: source socket -> pipe -> socket, until both would block, the range
// is done, or a slice has moved (then `ready` brings it back next turn, after the other lanes).
static void splice_turn(lane_t *lane) {
  const unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
  int64_t moved = 0;
  lane->ready = false;
  for (;;) {
    bool progress = false;
    if (lane->unread > 0) {
      size_t want = lane->unread > SLICE ? SLICE : (size_t)lane->unread;
      ssize_t n = splice(lane->file, NULL, lane->pipe_write, NULL, want, flags);
      if (n > 0) {
        lane->unread -= n;
        lane->piped += n;
        progress = true;
      } else if (n == 0) {
        return finish(lane, -1, true);
      } else if (errno != EAGAIN && errno != EINTR) {
        return finish(lane, errno, true);
      }
    }
    if (lane->piped > 0) {
      ssize_t n = splice(lane->pipe_read, NULL, lane->sock, NULL, (size_t)lane->piped, flags);
      if (n > 0) {
        lane->piped -= n;
        lane->remaining -= n;
        lane->sent += n;
        lane->progress_at = now_ms();
        moved += n;
        progress = true;
        if (lane->remaining == 0) return finish(lane, 0, true);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return finish(lane, errno, true);
      }
    }
    if (!progress) break;
    if (moved >= SLICE) {
      lane->ready = true;
      break;
    }
  }
  if (!lane->registered && !register_splice(lane)) return finish(lane, errno, true);
}

static void start_send(lane_t *lane) {
  loop_t *loop = lane->loop;
  lane->active = true;
  lane->progress_at = now_ms();
  lane->prev_active = NULL;
  lane->next_active = loop->active;
  if (loop->active) loop->active->prev_active = lane;
  loop->active = lane;
  if (lane->remaining == 0) return finish(lane, 0, true);
  if (!lane->splice) return send_slice(lane);
  lane->unread = lane->remaining;
  lane->piped = 0;
  splice_turn(lane);
}

static void give_up_stalled(loop_t *loop) {
  int64_t now = now_ms();
  for (lane_t *lane = loop->active, *next; lane != NULL; lane = next) {
    next = lane->next_active;
    if (lane->stall_ms > 0 && now - lane->progress_at >= lane->stall_ms) finish(lane, ETIMEDOUT, true);
  }
}

static void *run_loop(void *arg) {
  loop_t *loop = arg;
  struct epoll_event events[EVENTS];
  int64_t checked_at = now_ms();
  for (;;) {
    // Splice lanes that used up their slice last turn go on first; then nobody waits in epoll.
    bool busy = false;
    for (lane_t *lane = loop->active, *next; lane != NULL; lane = next) {
      next = lane->next_active;
      if (lane->ready) splice_turn(lane);
      busy = busy || lane->ready;
    }
    int ready = epoll_wait(loop->epoll, events, EVENTS, busy ? 0 : loop->active ? STALL_CHECK_MS : -1);
    // A splice lane has two sockets, so it can have two events in one batch, and the first may end
    // its send (then the JavaScript thread may close it): each event holds the lane until the batch is done.
    for (int i = 0; i < ready; i++) {
      lane_t *lane = events[i].data.ptr;
      if (lane != NULL) atomic_fetch_add(&lane->owners, 1);
    }
    for (int i = 0; i < ready; i++) {
      lane_t *lane = events[i].data.ptr;
      if (lane == NULL) {
        uint64_t count;
        ssize_t got = read(loop->wake, &count, sizeof count);
        (void)got;
      } else if (lane->active && lane->splice) {
        if (!lane->ready) splice_turn(lane);
      } else if (lane->active) {
        send_slice(lane);
      }
    }
    for (int i = 0; i < ready; i++) {
      if (events[i].data.ptr != NULL) release(events[i].data.ptr);
    }
    pthread_mutex_lock(&loop->lock);
    lane_t *queue = loop->queue;
    loop->queue = NULL;
    bool stop = loop->stop;
    pthread_mutex_unlock(&loop->lock);
    for (lane_t *lane = queue, *next; lane != NULL; lane = next) {
      // Unlinked one at a time: once `queued` is false the JavaScript thread may queue it again.
      pthread_mutex_lock(&loop->lock);
      next = lane->next_queued;
      lane->queued = false;
      int commands = lane->commands;
      lane->commands = 0;
      pthread_mutex_unlock(&loop->lock);
      if ((commands & CMD_SEND) && !stop) start_send(lane);
      if (commands & CMD_CLOSE) {
        if (lane->active) finish(lane, ECANCELED, true);
        close_open_lane(lane);
      }
      release(lane);
    }
    if (stop) break;
    if (loop->active && now_ms() - checked_at >= STALL_CHECK_MS) {
      give_up_stalled(loop);
      checked_at = now_ms();
    }
  }
  // The environment is going away: nobody is left to report to.
  while (loop->active) finish(loop->active, ECANCELED, false);
  return NULL;
}

// ---- JavaScript thread ----

void add_lane(lane_t *lane) {
  loop_t *loop = lane->loop;
  atomic_fetch_add(&loop->state->lanes, 1);
  atomic_fetch_add(&loop->lanes, 1);
  pthread_mutex_lock(&loop->lock);
  lane->next_open = loop->open;
  if (loop->open) loop->open->prev_open = lane;
  loop->open = lane;
  pthread_mutex_unlock(&loop->lock);
}

static int start_loop(state_t *state, loop_t *loop) {
  loop->state = state;
  loop->epoll = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epoll < 0) return errno;
  loop->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int error = loop->wake < 0 ? errno : 0;
  struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
  if (error == 0 && epoll_ctl(loop->epoll, EPOLL_CTL_ADD, loop->wake, &event) != 0) error = errno;
  if (error == 0) {
    pthread_attr_t attributes;
    error = pthread_attr_init(&attributes);
    if (error == 0) {
      pthread_attr_setstacksize(&attributes, STACK_BYTES);
      error = pthread_create(&loop->thread, &attributes, run_loop, loop);
      pthread_attr_destroy(&attributes);
    }
  }
  if (error != 0) {
    if (loop->wake >= 0) close(loop->wake);
    close(loop->epoll);
    return error;
  }
  return 0;
}

// The loop for a new lane: the least busy running one, or a new one while the cap allows and
// every running loop has work (a failed start falls back to the running ones).
loop_t *choose_loop(state_t *state) {
  loop_t *best = NULL;
  // Loops beyond a lowered cap keep their lanes but get no new ones.
  int usable = state->threads < state->max_threads ? state->threads : state->max_threads;
  for (int i = 0; i < usable; i++) {
    if (best == NULL || atomic_load(&state->loops[i].lanes) < atomic_load(&best->lanes)) best = &state->loops[i];
  }
  if ((best == NULL || atomic_load(&best->lanes) > 0) && state->threads < state->max_threads) {
    loop_t *loop = &state->loops[state->threads];
    if (start_loop(state, loop) == 0) {
      state->threads++;
      return loop;
    }
  }
  return best;
}

void post(lane_t *lane, int command) {
  loop_t *loop = lane->loop;
  pthread_mutex_lock(&loop->lock);
  lane->commands |= command;
  if (!lane->queued) {
    lane->queued = true;
    atomic_fetch_add(&lane->owners, 1);
    lane->next_queued = loop->queue;
    loop->queue = lane;
  }
  pthread_mutex_unlock(&loop->lock);
  wake(loop);
}

void close_lane(lane_t *lane) {
  if (lane->closed) return;
  lane->closed = true;
  // A send in flight belongs to the loop: it cancels it, then closes. Otherwise the loop has
  // nothing of this lane.
  if (lane->busy) post(lane, CMD_CLOSE);
  else close_open_lane(lane);
}

// Stops and joins every loop, then closes the lanes still open (nothing else runs any more).
void stop_loops(state_t *state) {
  for (int i = 0; i < state->threads; i++) {
    loop_t *loop = &state->loops[i];
    pthread_mutex_lock(&loop->lock);
    loop->stop = true;
    pthread_mutex_unlock(&loop->lock);
    wake(loop);
    pthread_join(loop->thread, NULL);
    close(loop->wake);
    close(loop->epoll);
    // Only this thread is left: every lane still open gives up its slot and its socket.
    while (loop->open) {
      loop->open->closed = true;
      close_open_lane(loop->open);
    }
  }
  state->threads = 0;
}

