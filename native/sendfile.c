// Ferry's sendfile(2) helper: sends byte ranges of open files to plain-TCP sockets from the page
// cache, without copying them through JavaScript buffers (issue #6: a 1 MiB read plus a 1 MiB
// socket write per chunk cost Node ~0.5 CPU-s/GiB and up to 3 MiB of buffers per download;
// sendfile costs ~0.15 and none).
//
// Threads. A small, fixed number of loop threads (configure({ threads }), default 4) serve every
// transfer: each runs one epoll loop over the non-blocking sockets it was given, and a socket
// that is writable gets one sendfile() slice per turn, so a client that stops reading holds a
// registration in a loop, never a thread (one thread per transfer made 300 stalled clients cost
// 311 threads). Loop threads start when first needed and stop when the environment is torn down
// (a worker thread's exit, or the process's): they never keep a process alive.
//
// Lanes. A response holds a lane for its whole duration: open(socketFd, stallMs) takes one of a
// capped number of slots (configure({ lanes }), default 1024) on a loop, or returns undefined
// when every slot is taken or no loop thread can be started. The caller then sends that
// response through JavaScript instead, before it wrote anything. A lane sends one range at a
// time (lane.send(...)): a mirror fill's follower sends one range per MiB as the file grows, and
// every one of them has its slot already, so a response never has to change paths midway.
//
// Descriptors (the dup/close contract):
//   - open() dup()s the socket (close-on-exec) and keeps that duplicate until the lane closes.
//     The helper never uses the caller's number after open() returned, so Node may close its own
//     descriptor at any time (a reset, a timeout) without the number ever pointing at another
//     connection mid-transfer. The connection itself stays open until both are closed: close the
//     lane as soon as the response ends or the client leaves.
//   - send() dup()s the file for that range and closes the duplicate before the callback is
//     queued: the caller may close its file descriptor as soon as send() returned.
//   - close() ends the lane: a running send stops at its next slice (its callback reports
//     ECANCELED), then the helper closes its socket duplicate and frees the slot. close() is
//     idempotent; a lane that is garbage collected unclosed is closed then.
//   - Environment teardown closes every descriptor the helper still holds.
// Completions reach the JavaScript thread through one unref'd thread-safe function per
// environment: callback(error message or null, bytes sent); the message is "EOF" when the file
// ended before the range did (a file still being written, or one cut short), "ETIMEDOUT" after
// stallMs without progress.
//
// Every piece of state lives in the environment's instance data: the addon loaded by several
// worker threads runs one independent set of loops per thread.
#define _GNU_SOURCE
#ifndef _FILE_OFFSET_BITS
#define _FILE_OFFSET_BITS 64
#endif
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>

// Offsets past 2 GiB on 32-bit platforms too (scripts/build-native.mjs passes the same flag).
_Static_assert(sizeof(off_t) == 8, "off_t must be 64 bits: build with -D_FILE_OFFSET_BITS=64");

// Bytes per sendfile() call: one turn of a loop for one socket.
#define SLICE (8 << 20)
// How often a loop looks for transfers that made no progress for their stallMs.
#define STALL_CHECK_MS 100
// A loop thread only makes syscalls: a small stack is plenty.
#define STACK_BYTES (256 << 10)
#define MAX_THREADS 64
#define DEFAULT_THREADS 4
#define DEFAULT_LANES 1024
#define EVENTS 64

enum { CMD_SEND = 1, CMD_CLOSE = 2 };

typedef struct state state_t;
typedef struct loop loop_t;

typedef struct lane {
  loop_t *loop;
  int sock;
  int64_t stall_ms;
  // The range being sent: set by the JavaScript thread before CMD_SEND is posted, then the loop
  // thread's until the completion is queued; report() reads sent and error.
  int file;
  off_t offset;
  int64_t remaining, sent;
  // 0: done; > 0: errno; -1: the file ended before the range did.
  int error;
  // Loop thread only.
  int64_t progress_at;
  bool active, registered;
  struct lane *prev_active, *next_active;
  // Under loop->lock.
  int commands;
  bool queued;
  struct lane *next_queued;
  struct lane *prev_open, *next_open;
  // JavaScript thread only.
  bool busy, closed;
  napi_ref callback;
  // The JavaScript handle, the open slot, a queued command, a queued completion.
  atomic_int owners;
} lane_t;

struct loop {
  state_t *state;
  pthread_t thread;
  bool running;
  int epoll, wake;
  atomic_int lanes;
  pthread_mutex_t lock;
  // Under lock: lanes with commands, every open lane of this loop, and the stop request.
  lane_t *queue;
  lane_t *open;
  bool stop;
  // Loop thread only: lanes sending now.
  lane_t *active;
};

struct state {
  napi_threadsafe_function completions;
  napi_ref lane_class;
  int max_threads, max_lanes;
  atomic_int lanes;
  // JavaScript thread only: loops started, and lanes refused.
  int threads;
  double refused;
  loop_t loops[MAX_THREADS];
};

static void release(lane_t *lane) {
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

// Frees the lane's slot and closes its socket; the caller holds no lock.
static void close_open_lane(lane_t *lane) {
  loop_t *loop = lane->loop;
  pthread_mutex_lock(&loop->lock);
  if (lane->prev_open) lane->prev_open->next_open = lane->next_open;
  else loop->open = lane->next_open;
  if (lane->next_open) lane->next_open->prev_open = lane->prev_open;
  pthread_mutex_unlock(&loop->lock);
  close(lane->sock);
  atomic_fetch_sub(&loop->lanes, 1);
  atomic_fetch_sub(&loop->state->lanes, 1);
  release(lane);
}

// Ends the running send; `report` queues its completion for the JavaScript thread.
static void finish(lane_t *lane, int error, bool report) {
  loop_t *loop = lane->loop;
  if (lane->registered) epoll_ctl(loop->epoll, EPOLL_CTL_DEL, lane->sock, NULL);
  lane->registered = false;
  if (lane->prev_active) lane->prev_active->next_active = lane->next_active;
  else loop->active = lane->next_active;
  if (lane->next_active) lane->next_active->prev_active = lane->prev_active;
  lane->active = false;
  close(lane->file);
  lane->file = -1;
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

static void start_send(lane_t *lane) {
  loop_t *loop = lane->loop;
  lane->active = true;
  lane->progress_at = now_ms();
  lane->prev_active = NULL;
  lane->next_active = loop->active;
  if (loop->active) loop->active->prev_active = lane;
  loop->active = lane;
  if (lane->remaining == 0) return finish(lane, 0, true);
  send_slice(lane);
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
    int ready = epoll_wait(loop->epoll, events, EVENTS, loop->active ? STALL_CHECK_MS : -1);
    for (int i = 0; i < ready; i++) {
      lane_t *lane = events[i].data.ptr;
      if (lane == NULL) {
        uint64_t count;
        ssize_t got = read(loop->wake, &count, sizeof count);
        (void)got;
      } else if (lane->active) {
        send_slice(lane);
      }
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
      if ((commands & CMD_SEND) && stop) close(lane->file);
      else if (commands & CMD_SEND) start_send(lane);
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
  loop->running = true;
  return 0;
}

// The loop for a new lane: the least busy running one, or a new one while the cap allows and
// every running loop has work (a failed start falls back to the running ones).
static loop_t *choose_loop(state_t *state) {
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

static void post(lane_t *lane, int command) {
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

static void close_lane(lane_t *lane) {
  if (lane->closed) return;
  lane->closed = true;
  // A send in flight belongs to the loop: it cancels it, then closes. Otherwise the loop has
  // nothing of this lane.
  if (lane->busy) post(lane, CMD_CLOSE);
  else close_open_lane(lane);
}

// Throws a JavaScript error naming the call that failed (unless one is already pending).
static void throw_failure(napi_env env, const char *call) {
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  char message[256];
  snprintf(message, sizeof message, "ferry-sendfile: %s failed (%s)", call,
           info != NULL && info->error_message != NULL ? info->error_message : "unknown");
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && !pending) napi_throw_error(env, NULL, message);
}

#define CHECK(call)                                                                                                    \
  do {                                                                                                                 \
    if ((call) != napi_ok) {                                                                                           \
      throw_failure(env, #call);                                                                                       \
      return NULL;                                                                                                     \
    }                                                                                                                  \
  } while (0)

static napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

static state_t *state_of(napi_env env) {
  void *data = NULL;
  return napi_get_instance_data(env, &data) == napi_ok ? data : NULL;
}

// On the JavaScript thread, once a send ended; env is NULL when the environment is torn down.
static void report(napi_env env, napi_value unused, void *context, void *data) {
  lane_t *lane = data;
  if (env == NULL) return release(lane);
  lane->busy = false;
  napi_ref ref = lane->callback;
  lane->callback = NULL;
  napi_value callback, argv[2], undefined;
  bool ok = napi_get_reference_value(env, ref, &callback) == napi_ok && callback != NULL;
  if (ok && lane->error == 0) ok = napi_get_null(env, &argv[0]) == napi_ok;
  else if (ok) {
    const char *message = lane->error < 0 ? "EOF" : lane->error == ETIMEDOUT ? "ETIMEDOUT" : strerror(lane->error);
    ok = napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &argv[0]) == napi_ok;
  }
  ok = ok && napi_create_double(env, (double)lane->sent, &argv[1]) == napi_ok && napi_get_undefined(env, &undefined) == napi_ok;
  napi_delete_reference(env, ref);
  release(lane);
  if (!ok) return;
  if (napi_call_function(env, undefined, callback, 2, argv, NULL) != napi_ok) {
    // A callback that threw: an uncaught exception, as from any other callback.
    napi_value exception;
    if (napi_get_and_clear_last_exception(env, &exception) == napi_ok) napi_fatal_exception(env, exception);
  }
}

// A lane collected unclosed is closed now (after a teardown every lane is closed already).
static void collect(napi_env env, void *data, void *hint) {
  lane_t *lane = data;
  close_lane(lane);
  release(lane);
}

static lane_t *lane_of(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok || napi_unwrap(env, self, &data) != napi_ok) {
    throw_failure(env, "lane");
    return NULL;
  }
  return data;
}

static int dup_cloexec(int fd) {
  return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

// lane.send(fileFd, offset, length, callback): one range; the previous one must have reported.
static napi_value lane_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  lane_t *lane = lane_of(env, info, &argc, argv);
  if (lane == NULL) return NULL;
  if (argc < 4) return throw_error(env, "send(fileFd, offset, length, callback)");
  int32_t file;
  int64_t offset, length;
  napi_valuetype kind;
  CHECK(napi_get_value_int32(env, argv[0], &file));
  CHECK(napi_get_value_int64(env, argv[1], &offset));
  CHECK(napi_get_value_int64(env, argv[2], &length));
  CHECK(napi_typeof(env, argv[3], &kind));
  if (file < 0 || offset < 0 || length < 0 || kind != napi_function) return throw_error(env, "send: bad arguments");
  if (lane->closed) return throw_error(env, "send: the lane is closed");
  if (lane->busy) return throw_error(env, "send: the previous send has not finished");
  CHECK(napi_create_reference(env, argv[3], 1, &lane->callback));
  lane->file = dup_cloexec(file);
  if (lane->file < 0) {
    int error = errno;
    napi_delete_reference(env, lane->callback);
    lane->callback = NULL;
    return throw_error(env, strerror(error));
  }
  lane->offset = (off_t)offset;
  lane->remaining = length;
  lane->sent = 0;
  lane->error = 0;
  lane->busy = true;
  post(lane, CMD_SEND);
  return NULL;
}

static napi_value lane_close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  lane_t *lane = lane_of(env, info, &argc, NULL);
  if (lane == NULL) return NULL;
  close_lane(lane);
  return NULL;
}

static napi_value lane_constructor(napi_env env, napi_callback_info info) {
  napi_value self;
  CHECK(napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  return self;
}

// open(socketFd, stallMs) -> lane, or undefined when no slot or loop thread is available.
static napi_value open_lane(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_error(env, "open(socketFd, stallMs)");
  int32_t sock;
  int64_t stall_ms;
  CHECK(napi_get_value_int32(env, argv[0], &sock));
  CHECK(napi_get_value_int64(env, argv[1], &stall_ms));
  if (sock < 0 || stall_ms < 0) return throw_error(env, "open: bad arguments");
  state_t *state = state_of(env);
  if (state == NULL) return throw_error(env, "open: the helper is not initialised");
  CHECK(napi_get_undefined(env, &result));
  if (atomic_load(&state->lanes) >= state->max_lanes) {
    state->refused++;
    return result;
  }
  loop_t *loop = choose_loop(state);
  if (loop == NULL) {
    state->refused++;
    return result;
  }
  napi_value lane_class, handle;
  CHECK(napi_get_reference_value(env, state->lane_class, &lane_class));
  CHECK(napi_new_instance(env, lane_class, 0, NULL, &handle));
  lane_t *lane = calloc(1, sizeof *lane);
  if (lane == NULL) return throw_error(env, "open: out of memory");
  lane->sock = dup_cloexec(sock);
  if (lane->sock < 0) {
    // Out of descriptors: this response goes the other way.
    free(lane);
    state->refused++;
    return result;
  }
  lane->loop = loop;
  lane->stall_ms = stall_ms;
  lane->file = -1;
  atomic_init(&lane->owners, 2);
  if (napi_wrap(env, handle, lane, collect, NULL, NULL) != napi_ok) {
    throw_failure(env, "napi_wrap");
    close(lane->sock);
    free(lane);
    return NULL;
  }
  atomic_fetch_add(&state->lanes, 1);
  atomic_fetch_add(&loop->lanes, 1);
  pthread_mutex_lock(&loop->lock);
  lane->next_open = loop->open;
  if (loop->open) loop->open->prev_open = lane;
  loop->open = lane;
  pthread_mutex_unlock(&loop->lock);
  return handle;
}

static napi_value number_property(napi_env env, napi_value object, const char *name, double value) {
  napi_value number;
  CHECK(napi_create_double(env, value, &number));
  CHECK(napi_set_named_property(env, object, name, number));
  return object;
}

// stats() -> { threads, lanes, maxThreads, maxLanes, refused }
static napi_value stats(napi_env env, napi_callback_info info) {
  state_t *state = state_of(env);
  if (state == NULL) return throw_error(env, "stats: the helper is not initialised");
  napi_value result;
  CHECK(napi_create_object(env, &result));
  if (number_property(env, result, "threads", state->threads) == NULL ||
      number_property(env, result, "lanes", atomic_load(&state->lanes)) == NULL ||
      number_property(env, result, "maxThreads", state->max_threads) == NULL ||
      number_property(env, result, "maxLanes", state->max_lanes) == NULL ||
      number_property(env, result, "refused", state->refused) == NULL)
    return NULL;
  return result;
}

// Reads options[name] into *value when it is a number in 0..max.
static bool limit_option(napi_env env, napi_value options, const char *name, int max, int *value) {
  bool has = false;
  napi_value property;
  napi_valuetype kind;
  int32_t number;
  if (napi_has_named_property(env, options, name, &has) != napi_ok) return false;
  if (!has) return true;
  if (napi_get_named_property(env, options, name, &property) != napi_ok || napi_typeof(env, property, &kind) != napi_ok) return false;
  if (kind != napi_number || napi_get_value_int32(env, property, &number) != napi_ok || number < 0 || number > max) {
    char message[96];
    snprintf(message, sizeof message, "configure: %s must be a number from 0 to %d", name, max);
    napi_throw_range_error(env, NULL, message);
    return false;
  }
  *value = number;
  return true;
}

// configure({ threads, lanes }) -> stats(). Limits apply to new lanes: lanes open stay open, and
// loops beyond a lowered thread cap run (idle once their lanes closed) until teardown.
static napi_value configure(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value options;
  napi_valuetype kind;
  CHECK(napi_get_cb_info(env, info, &argc, &options, NULL, NULL));
  state_t *state = state_of(env);
  if (state == NULL) return throw_error(env, "configure: the helper is not initialised");
  if (argc < 1) return throw_error(env, "configure({ threads, lanes })");
  CHECK(napi_typeof(env, options, &kind));
  if (kind != napi_object) return throw_error(env, "configure({ threads, lanes })");
  int threads = state->max_threads, lanes = state->max_lanes;
  if (!limit_option(env, options, "threads", MAX_THREADS, &threads) || !limit_option(env, options, "lanes", 1 << 20, &lanes)) {
    throw_failure(env, "configure");
    return NULL;
  }
  state->max_threads = threads;
  state->max_lanes = lanes;
  return stats(env, info);
}

// Before the thread-safe function closes (hooks run in reverse order of registration): stops
// the loops, then closes what the lanes still hold.
static void tear_down(void *arg) {
  state_t *state = arg;
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

static void free_state(napi_env env, void *data, void *hint) {
  state_t *state = data;
  for (int i = 0; i < MAX_THREADS; i++) pthread_mutex_destroy(&state->loops[i].lock);
  free(state);
}

NAPI_MODULE_INIT() {
  state_t *state = calloc(1, sizeof *state);
  if (state == NULL) return throw_error(env, "ferry-sendfile: out of memory");
  state->max_threads = DEFAULT_THREADS;
  state->max_lanes = DEFAULT_LANES;
  for (int i = 0; i < MAX_THREADS; i++) pthread_mutex_init(&state->loops[i].lock, NULL);
  if (napi_set_instance_data(env, state, free_state, NULL) != napi_ok) {
    free_state(env, state, NULL);
    return throw_error(env, "ferry-sendfile: cannot keep its state");
  }
  napi_value name, lane_class, fn;
  CHECK(napi_create_string_utf8(env, "ferry-sendfile", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, report, &state->completions));
  // Completions pending keep no process alive: a lane's owner (a response) does that.
  CHECK(napi_unref_threadsafe_function(env, state->completions));
  CHECK(napi_add_env_cleanup_hook(env, tear_down, state));
  napi_property_descriptor methods[] = {
      {"send", NULL, lane_send, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, lane_close, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_class(env, "SendfileLane", NAPI_AUTO_LENGTH, lane_constructor, NULL, 2, methods, &lane_class));
  CHECK(napi_create_reference(env, lane_class, 1, &state->lane_class));
  CHECK(napi_create_function(env, "open", NAPI_AUTO_LENGTH, open_lane, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "open", fn));
  CHECK(napi_create_function(env, "stats", NAPI_AUTO_LENGTH, stats, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "stats", fn));
  CHECK(napi_create_function(env, "configure", NAPI_AUTO_LENGTH, configure, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "configure", fn));
  return exports;
}
