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
// Lanes. A response holds a lane for its whole duration: open(socketFd, fileFd, stallMs) takes
// one of a capped number of slots (configure({ lanes }); by default 1024, or a quarter of the
// descriptor limit when that is lower: a lane holds two) on a loop, or returns undefined when
// every slot is taken, no loop thread can be started or no descriptor is left. The caller then
// sends that response through JavaScript instead, before it wrote anything. A lane sends one
// range of its file at a time (lane.send(offset, length, callback)): a mirror fill's follower
// sends one range per MiB as the file grows, all through the lane it opened first, so a
// response never has to change paths midway, and nothing after open() can run out of descriptors.
//
// Splice lanes. openSplice(socketFd, sourceFd, stallMs) opens a lane whose source is another
// plain-TCP socket (an S3 GET's, storage/driver/s3-socket-get.ts) rather than a file: send(0,
// length) moves the next `length` bytes arriving on it to the socket with splice(2), through a
// pipe the lane owns (1 MiB when the system allows), so a cached pull from a plain-HTTP store
// never copies its bytes through JavaScript. Both sockets are registered edge-triggered; a turn
// moves bytes until both sides would block or a slice has moved (then the lane goes on next turn,
// after the others). The source ending first reports "EOF"; the same lanes, stall, cancel and
// completion contract as a file's. Node must not read the source socket while the lane is open.
//
// Descriptors (the dup/close contract):
//   - open() dup()s the socket and the file (close-on-exec) and keeps both duplicates until the
//     lane closes. The helper never uses the caller's numbers after open() returned: Node may
//     close its socket descriptor at any time (a reset, a timeout) without the number ever
//     pointing at another connection mid-transfer, and the caller may close its file descriptor
//     at once. The connection itself stays open until both are closed: close the lane as soon
//     as the response ends or the client leaves.
//   - close() ends the lane: a running send stops at its next slice (its callback reports
//     ECANCELED), then the helper closes both duplicates and frees the slot. close() is
//     idempotent; a lane that is garbage collected unclosed is closed then.
//   - Environment teardown closes every descriptor the helper still holds.
// Completions reach the JavaScript thread through one unref'd thread-safe function per
// environment: callback(error message or null, bytes sent); the message is "EOF" when the file
// ended before the range did (a file still being written, or one cut short), "ETIMEDOUT" after
// stallMs without progress.
//
// trimMemory() is the one call here that is not about sending: it hands the C heap's free pages
// back to the system (glibc's malloc_trim). After a fill, the freed 1 MiB blocks and the upstream's
// 64 KiB chunks leave 20-45 MiB of free but resident malloc memory that glibc keeps for the next
// allocation (#18); Ferry calls it once transfers have stopped (app/memory-reclaim.ts).
//
// Every piece of state lives in the environment's instance data: the addon loaded by several
// worker threads runs one independent set of loops per thread.
#include "sendfile-loops.h"

#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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

// lane.send(offset, length, callback): one range; the previous one must have reported.
static napi_value lane_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  lane_t *lane = lane_of(env, info, &argc, argv);
  if (lane == NULL) return NULL;
  if (argc < 3) return throw_error(env, "send(offset, length, callback)");
  int64_t offset, length;
  napi_valuetype kind;
  CHECK(napi_get_value_int64(env, argv[0], &offset));
  CHECK(napi_get_value_int64(env, argv[1], &length));
  CHECK(napi_typeof(env, argv[2], &kind));
  if (offset < 0 || length < 0 || kind != napi_function) return throw_error(env, "send: bad arguments");
  if (lane->closed) return throw_error(env, "send: the lane is closed");
  if (lane->busy) return throw_error(env, "send: the previous send has not finished");
  if (lane->splice && offset != 0) return throw_error(env, "send: a splice lane sends the next bytes of its source (offset 0)");
  CHECK(napi_create_reference(env, argv[2], 1, &lane->callback));
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

// The pipe of a splice lane: 1 MiB when the system allows (fewer turns per MiB), else its default.
#define PIPE_BYTES (1 << 20)

// A lane over duplicates of `sock` and `file` (for a splice lane, the source socket, and a pipe),
// or NULL when no descriptor is left.
static lane_t *new_lane(int sock, int file, bool splice) {
  lane_t *lane = calloc(1, sizeof *lane);
  if (lane == NULL) return NULL;
  int pipe_ends[2] = {-1, -1};
  lane->sock = dup_cloexec(sock);
  lane->file = lane->sock < 0 ? -1 : dup_cloexec(file);
  if (lane->file >= 0 && splice && pipe2(pipe_ends, O_NONBLOCK | O_CLOEXEC) == 0) fcntl(pipe_ends[1], F_SETPIPE_SZ, PIPE_BYTES);
  if (lane->file < 0 || (splice && pipe_ends[0] < 0)) {
    if (lane->sock >= 0) close(lane->sock);
    if (lane->file >= 0) close(lane->file);
    free(lane);
    return NULL;
  }
  lane->splice = splice;
  lane->pipe_read = pipe_ends[0];
  lane->pipe_write = pipe_ends[1];
  return lane;
}

static void close_descriptors(lane_t *lane) {
  close(lane->sock);
  close(lane->file);
  if (lane->splice) {
    close(lane->pipe_read);
    close(lane->pipe_write);
  }
}

// open(socketFd, fileFd, stallMs) and openSplice(socketFd, sourceFd, stallMs) -> lane, or undefined
// when no slot, loop thread or descriptor is available.
static napi_value open_any(napi_env env, napi_callback_info info, bool splice) {
  size_t argc = 3;
  napi_value argv[3], result;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_error(env, splice ? "openSplice(socketFd, sourceFd, stallMs)" : "open(socketFd, fileFd, stallMs)");
  int32_t sock, file;
  int64_t stall_ms;
  CHECK(napi_get_value_int32(env, argv[0], &sock));
  CHECK(napi_get_value_int32(env, argv[1], &file));
  CHECK(napi_get_value_int64(env, argv[2], &stall_ms));
  if (sock < 0 || file < 0 || stall_ms < 0) return throw_error(env, "open: bad arguments");
  state_t *state = state_of(env);
  if (state == NULL) return throw_error(env, "open: the helper is not initialised");
  CHECK(napi_get_undefined(env, &result));
  loop_t *loop = atomic_load(&state->lanes) < state->max_lanes ? choose_loop(state) : NULL;
  if (loop == NULL) {
    state->refused++;
    return result;
  }
  napi_value lane_class, handle;
  CHECK(napi_get_reference_value(env, state->lane_class, &lane_class));
  CHECK(napi_new_instance(env, lane_class, 0, NULL, &handle));
  lane_t *lane = new_lane(sock, file, splice);
  if (lane == NULL) {
    // Out of descriptors (or memory): this response goes the other way.
    state->refused++;
    return result;
  }
  lane->loop = loop;
  lane->stall_ms = stall_ms;
  atomic_init(&lane->owners, 2);
  if (napi_wrap(env, handle, lane, collect, NULL, NULL) != napi_ok) {
    throw_failure(env, "napi_wrap");
    close_descriptors(lane);
    free(lane);
    return NULL;
  }
  add_lane(lane);
  if (splice) state->splices++;
  return handle;
}

static napi_value open_lane(napi_env env, napi_callback_info info) {
  return open_any(env, info, false);
}

static napi_value open_splice(napi_env env, napi_callback_info info) {
  return open_any(env, info, true);
}

static napi_value number_property(napi_env env, napi_value object, const char *name, double value) {
  napi_value number;
  CHECK(napi_create_double(env, value, &number));
  CHECK(napi_set_named_property(env, object, name, number));
  return object;
}

// stats() -> { threads, lanes, maxThreads, maxLanes, refused, splices }
static napi_value stats(napi_env env, napi_callback_info info) {
  state_t *state = state_of(env);
  if (state == NULL) return throw_error(env, "stats: the helper is not initialised");
  napi_value result;
  CHECK(napi_create_object(env, &result));
  if (number_property(env, result, "threads", state->threads) == NULL ||
      number_property(env, result, "lanes", atomic_load(&state->lanes)) == NULL ||
      number_property(env, result, "maxThreads", state->max_threads) == NULL ||
      number_property(env, result, "maxLanes", state->max_lanes) == NULL ||
      number_property(env, result, "refused", state->refused) == NULL ||
      number_property(env, result, "splices", state->splices) == NULL)
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

// Before the thread-safe function closes (hooks run in reverse order of registration).
// trimMemory(): whether free pages went back to the system (always false without glibc).
static napi_value trim_memory(napi_env env, napi_callback_info info) {
  bool released = false;
#ifdef __GLIBC__
  released = malloc_trim(0) == 1;
#endif
  napi_value result;
  CHECK(napi_get_boolean(env, released, &result));
  return result;
}

static void tear_down(void *arg) {
  stop_loops(arg);
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
  struct rlimit descriptors;
  if (getrlimit(RLIMIT_NOFILE, &descriptors) == 0 && descriptors.rlim_cur != RLIM_INFINITY && descriptors.rlim_cur / 4 < DEFAULT_LANES)
    state->max_lanes = (int)(descriptors.rlim_cur / 4);
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
  CHECK(napi_create_function(env, "openSplice", NAPI_AUTO_LENGTH, open_splice, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "openSplice", fn));
  CHECK(napi_create_function(env, "stats", NAPI_AUTO_LENGTH, stats, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "stats", fn));
  CHECK(napi_create_function(env, "configure", NAPI_AUTO_LENGTH, configure, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "configure", fn));
  CHECK(napi_create_function(env, "trimMemory", NAPI_AUTO_LENGTH, trim_memory, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "trimMemory", fn));
  return exports;
}
