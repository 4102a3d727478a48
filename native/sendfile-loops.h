// The loop threads and lanes of the sendfile(2) helper (sendfile-loops.c), shared with its N-API
// surface (sendfile.c, whose header comment has the design and the descriptor contract). Which
// thread may touch which field is written next to the field.
#ifndef FERRY_SENDFILE_LOOPS_H
#define FERRY_SENDFILE_LOOPS_H
#define _GNU_SOURCE
#ifndef _FILE_OFFSET_BITS
#define _FILE_OFFSET_BITS 64
#endif
#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

// Offsets past 2 GiB on 32-bit platforms too (scripts/build-native.mjs passes the same flag).
_Static_assert(sizeof(off_t) == 8, "off_t must be 64 bits: build with -D_FILE_OFFSET_BITS=64");

#define MAX_THREADS 64
#define DEFAULT_THREADS 4
#define DEFAULT_LANES 1024
#define EVENTS 64

enum { CMD_SEND = 1, CMD_CLOSE = 2 };

typedef struct state state_t;
typedef struct loop loop_t;

typedef struct lane {
  loop_t *loop;
  // The lane's own duplicates, closed with the lane. A splice lane's `file` is its source socket,
  // and it owns a pipe (source -> pipe -> sock); a sendfile lane's pipe ends are -1.
  int sock, file;
  int pipe_read, pipe_write;
  bool splice;
  int64_t stall_ms;
  // The range being sent: set by the JavaScript thread before CMD_SEND is posted, then the loop
  // thread's until the completion is queued; report() reads sent and error.
  off_t offset;
  int64_t remaining, sent;
  // 0: done; > 0: errno; -1: the file (or the source socket) ended before the range did.
  int error;
  // Loop thread only. A splice lane's bytes still to take from its source, and in its pipe.
  int64_t progress_at;
  int64_t unread, piped;
  bool active, registered, ready;
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
  // JavaScript thread only: loops started, lanes refused, and splice lanes opened.
  int threads;
  double refused, splices;
  loop_t loops[MAX_THREADS];
};

// JavaScript thread. The loop for a new lane (starting one if the cap allows), or NULL when none can run.
loop_t *choose_loop(state_t *state);
// JavaScript thread. Counts an open lane on its loop (the lane holds its duplicates).
void add_lane(lane_t *lane);
// JavaScript thread. Hands a command to the lane's loop.
void post(lane_t *lane, int command);
// JavaScript thread. Closes the lane: now when idle, through its loop when a send runs.
void close_lane(lane_t *lane);
// Drops one owner; the last frees the lane.
void release(lane_t *lane);
// JavaScript thread, at environment teardown: stops and joins the loops, closes every lane.
void stop_loops(state_t *state);

#endif
