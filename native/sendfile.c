// Ferry's sendfile(2) helper: sends a byte range of an open file to a plain-TCP socket from the
// page cache, without copying it through JavaScript buffers (issue #6: a 1 MiB read plus a
// 1 MiB socket write per chunk cost Node ~0.5 CPU-s/GiB and up to 3 MiB of buffers per
// download; sendfile costs ~0.15 and none).
//
// Each transfer runs on a thread of its own while it lasts: the socket is non-blocking
// (libuv's), so the thread loops sendfile() and waits in poll() when the socket buffer is full,
// and the event loop never blocks. Threads are kept for a while after a transfer and reused
// (a mirror fill's followers start one short transfer per MiB as the file grows: creating a
// thread each time cost ~130 µs of the event loop). Both descriptors are dup()ed first, so Node
// closing its own descriptor (a client reset, a timeout) can never make the number point at
// another connection mid-transfer. Completions reach the JavaScript thread through one
// thread-safe function: callback(error message or null, bytes sent); the message is "EOF" when
// the file ended before the range did (a file still being written, or one cut short).
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
// A thread only loops over syscalls: a small stack is plenty.
#define STACK_BYTES (256 << 10)
// How long an idle thread waits for the next transfer before it exits.
#define IDLE_SECONDS 30

typedef struct transfer {
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
  // The JavaScript callback, called once on the JavaScript thread.
  napi_ref callback;
  // Owners: the transfer (until its callback ran) and the JavaScript handle (until collected).
  int owners;
  struct transfer *next;
} transfer_t;

// Transfers waiting for a thread, and the threads waiting for a transfer.
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_ready = PTHREAD_COND_INITIALIZER;
static transfer_t *queue_head, *queue_tail;
static int queued, idle_threads;
// Created on the first start(); never released (it is unref'd: it keeps no process alive).
static napi_threadsafe_function completions;

static void release(transfer_t *t) {
  if (--t->owners == 0) free(t);
}

static int64_t now_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void send_range(transfer_t *t) {
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
  napi_call_threadsafe_function(completions, t, napi_tsfn_blocking);
}

static void *worker(void *unused) {
  pthread_mutex_lock(&queue_lock);
  for (;;) {
    while (queue_head == NULL) {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_sec += IDLE_SECONDS;
      idle_threads++;
      int waited = pthread_cond_timedwait(&queue_ready, &queue_lock, &until);
      idle_threads--;
      if (waited == ETIMEDOUT && queue_head == NULL) {
        pthread_mutex_unlock(&queue_lock);
        return NULL;
      }
    }
    transfer_t *t = queue_head;
    queue_head = t->next;
    if (queue_head == NULL) queue_tail = NULL;
    queued--;
    pthread_mutex_unlock(&queue_lock);
    send_range(t);
    pthread_mutex_lock(&queue_lock);
  }
}

// Queues a transfer for an idle thread, or starts a thread for it. Returns 0 or an errno.
static int submit(transfer_t *t) {
  pthread_mutex_lock(&queue_lock);
  t->next = NULL;
  if (queue_tail) queue_tail->next = t;
  else queue_head = t;
  queue_tail = t;
  queued++;
  int error = 0;
  // Each idle thread takes one queued transfer: wake one if there are enough for this one too.
  if (idle_threads >= queued) {
    pthread_cond_signal(&queue_ready);
  } else {
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setstacksize(&attributes, STACK_BYTES);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    error = pthread_create(&thread, &attributes, worker, NULL);
    pthread_attr_destroy(&attributes);
    if (error != 0) {
      // Take it back out: the caller reports the failure.
      transfer_t **link = &queue_head;
      while (*link != t) link = &(*link)->next;
      *link = t->next;
      queued--;
      queue_tail = NULL;
      for (transfer_t *last = queue_head; last != NULL; last = last->next) queue_tail = last;
    }
  }
  pthread_mutex_unlock(&queue_lock);
  return error;
}

// On the JavaScript thread, once a transfer ended.
static void report(napi_env env, napi_value unused, void *context, void *data) {
  transfer_t *t = data;
  if (env != NULL) {
    napi_value callback, argv[2], undefined;
    if (napi_get_reference_value(env, t->callback, &callback) == napi_ok && callback != NULL) {
      if (t->error == 0) {
        napi_get_null(env, &argv[0]);
      } else {
        const char *message = t->error < 0 ? "EOF" : strerror(t->error);
        napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &argv[0]);
      }
      napi_create_double(env, (double)t->sent, &argv[1]);
      napi_get_undefined(env, &undefined);
      napi_call_function(env, undefined, callback, 2, argv, NULL);
    }
    napi_delete_reference(env, t->callback);
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

  if (completions == NULL) {
    napi_value name;
    napi_create_string_utf8(env, "ferry-sendfile", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, report, &completions) != napi_ok) {
      completions = NULL;
      return throw_error(env, "start: cannot create the completion channel");
    }
    napi_unref_threadsafe_function(env, completions);
  }

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
  napi_value handle, cancel_fn;
  napi_create_reference(env, argv[5], 1, &t->callback);
  napi_create_object(env, &handle);
  napi_wrap(env, handle, t, collect, NULL, NULL);
  napi_create_function(env, "cancel", NAPI_AUTO_LENGTH, cancel, NULL, &cancel_fn);
  napi_set_named_property(env, handle, "cancel", cancel_fn);

  int error = submit(t);
  if (error != 0) {
    // Reported through the callback like any other failure.
    close(t->sock);
    close(t->file);
    t->error = error;
    napi_call_threadsafe_function(completions, t, napi_tsfn_nonblocking);
  }
  return handle;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "start", NAPI_AUTO_LENGTH, start, NULL, &fn);
  napi_set_named_property(env, exports, "start", fn);
  return exports;
}
