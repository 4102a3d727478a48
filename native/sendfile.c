// Ferry's sendfile(2) helper: sends a byte range of an open file to a plain-TCP socket from the
// page cache, without copying it through JavaScript buffers (issue #6: a 1 MiB read plus a
// 1 MiB socket write per chunk cost Node ~0.5 CPU-s/GiB and up to 3 MiB of buffers per
// download; sendfile costs ~0.15 and none).
//
// Each transfer runs on its own small thread: the socket is non-blocking (libuv's), so the
// thread loops sendfile() and waits in poll() when the socket buffer is full, and the event loop
// never blocks. Both descriptors are dup()ed first, so Node closing its own descriptor (a client
// reset, a timeout) can never make the number point at another connection mid-transfer.
// Completion is reported on the JavaScript thread through a thread-safe function:
// callback(error message or null, bytes sent).
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>

// Bytes per sendfile() call: small enough to notice a cancel promptly, large enough to be cheap.
#define SLICE (8 << 20)
// How long one poll() for a writable socket waits before checking for a cancel.
#define POLL_MS 250
// A transfer's thread only loops over syscalls: a small stack is plenty.
#define STACK_BYTES (256 << 10)

typedef struct {
  int sock;
  int file;
  off_t offset;
  int64_t remaining;
  int64_t sent;
  // Milliseconds without progress after which the client is given up on (0: never).
  int64_t stall_ms;
  // 0: done; > 0: errno; -1: the file ended before the range did.
  int error;
  atomic_int cancelled;
  napi_threadsafe_function done;
  // Owners: the transfer (until its callback ran) and the JavaScript handle (until collected).
  int owners;
} transfer_t;

static void release(transfer_t *t) {
  if (--t->owners == 0) free(t);
}

static int64_t now_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void *run(void *arg) {
  transfer_t *t = arg;
  int64_t progress_at = now_ms();
  while (t->remaining > 0) {
    if (atomic_load(&t->cancelled)) {
      t->error = ECANCELED;
      break;
    }
    size_t want = t->remaining > SLICE ? SLICE : (size_t)t->remaining;
    ssize_t n = sendfile(t->sock, t->file, &t->offset, want);
    if (n > 0) {
      t->remaining -= n;
      t->sent += n;
      progress_at = now_ms();
    } else if (n == 0) {
      t->error = -1;
      break;
    } else if (errno == EAGAIN) {
      if (t->stall_ms > 0 && now_ms() - progress_at >= t->stall_ms) {
        t->error = ETIMEDOUT;
        break;
      }
      struct pollfd p = {.fd = t->sock, .events = POLLOUT};
      poll(&p, 1, POLL_MS);
    } else if (errno != EINTR) {
      t->error = errno;
      break;
    }
  }
  close(t->sock);
  close(t->file);
  napi_call_threadsafe_function(t->done, t, napi_tsfn_blocking);
  napi_release_threadsafe_function(t->done, napi_tsfn_release);
  return NULL;
}

// On the JavaScript thread, once the transfer ended.
static void report(napi_env env, napi_value callback, void *context, void *data) {
  transfer_t *t = data;
  if (env != NULL && callback != NULL) {
    napi_value argv[2], undefined;
    if (t->error == 0) {
      napi_get_null(env, &argv[0]);
    } else {
      const char *message = t->error < 0 ? "the file ended before the range" : strerror(t->error);
      napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &argv[0]);
    }
    napi_create_double(env, (double)t->sent, &argv[1]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, callback, 2, argv, NULL);
  }
  release(t);
}

static void collect(napi_env env, void *data, void *hint) {
  release(data);
}

static napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

static napi_value cancel(napi_env env, napi_callback_info info) {
  napi_value self;
  void *data = NULL;
  napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
  if (napi_unwrap(env, self, &data) == napi_ok && data != NULL) atomic_store(&((transfer_t *)data)->cancelled, 1);
  return NULL;
}

// start(socketFd, fileFd, offset, length, stallMs, callback) -> { cancel() }
static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) return throw_error(env, "start(socketFd, fileFd, offset, length, stallMs, callback)");
  int32_t sock, file;
  int64_t offset, length, stall_ms;
  napi_valuetype kind;
  if (napi_get_value_int32(env, argv[0], &sock) != napi_ok || napi_get_value_int32(env, argv[1], &file) != napi_ok ||
      napi_get_value_int64(env, argv[2], &offset) != napi_ok || napi_get_value_int64(env, argv[3], &length) != napi_ok ||
      napi_get_value_int64(env, argv[4], &stall_ms) != napi_ok || napi_typeof(env, argv[5], &kind) != napi_ok || kind != napi_function ||
      sock < 0 || file < 0 || offset < 0 || length < 0 || stall_ms < 0)
    return throw_error(env, "start: bad arguments");

  transfer_t *t = calloc(1, sizeof *t);
  if (t == NULL) return throw_error(env, "start: out of memory");
  t->offset = (off_t)offset;
  t->remaining = length;
  t->stall_ms = stall_ms;
  t->owners = 2;
  t->sock = dup(sock);
  t->file = t->sock < 0 ? -1 : dup(file);
  if (t->file < 0) {
    int error = errno;
    if (t->sock >= 0) close(t->sock);
    free(t);
    return throw_error(env, strerror(error));
  }

  napi_value name, handle, cancel_fn;
  napi_create_string_utf8(env, "ferry-sendfile", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[5], NULL, name, 0, 1, NULL, NULL, NULL, report, &t->done) != napi_ok) {
    close(t->sock);
    close(t->file);
    free(t);
    return throw_error(env, "start: cannot create the completion callback");
  }
  napi_create_object(env, &handle);
  napi_wrap(env, handle, t, collect, NULL, NULL);
  napi_create_function(env, "cancel", NAPI_AUTO_LENGTH, cancel, NULL, &cancel_fn);
  napi_set_named_property(env, handle, "cancel", cancel_fn);

  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setstacksize(&attributes, STACK_BYTES);
  pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  int error = pthread_create(&thread, &attributes, run, t);
  pthread_attr_destroy(&attributes);
  if (error != 0) {
    // Report through the callback like any other failure: the handle still owns its half.
    close(t->sock);
    close(t->file);
    t->error = error;
    napi_call_threadsafe_function(t->done, t, napi_tsfn_nonblocking);
    napi_release_threadsafe_function(t->done, napi_tsfn_release);
  }
  return handle;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "start", NAPI_AUTO_LENGTH, start, NULL, &fn);
  napi_set_named_property(env, exports, "start", fn);
  return exports;
}
