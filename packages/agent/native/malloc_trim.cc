/*
 * bartoc's memory addon (issue 17), three calls into glibc and V8 that Node does not offer:
 *
 * - On load, `mallopt(M_ARENA_MAX, 1)`: the threads that malloc later (V8's platform workers,
 *   libuv's pool) share the main heap instead of each making an arena of its own, whose pages stay
 *   resident around a few live chunks (bench `bartoc`: ~1 MiB less idle RSS).
 * - `mallocTrim()`: glibc's malloc_trim(0), which hands the free pages inside the malloc heap back
 *   to the kernel. V8 parses the bundle in a ~11 MiB zone; glibc frees it but keeps it mapped,
 *   since a live chunk sits above it.
 * - `reduceHeap()`: V8's moderate memory-pressure notification, which starts an incremental GC that
 *   compacts and gives empty pages back, as V8's own memory reducer does ~8 s after startup; bartoc
 *   asks for it as soon as startup's garbage is there, so the idle footprint does not depend on when
 *   that timer fires. (The critical level does the same GC at once, in one pause: 18–93 ms for
 *   bartoc's heap at load 6, against steps of at most ~20 ms and a final pause of 2–12 ms.)
 *
 * Without glibc (musl, macOS) the malloc calls are no-ops and `mallocTrim` returns -1. C++ only for
 * v8.h (no exceptions, no RTTI, nothing of the C++ library); built by scripts/build.mjs against the
 * headers of the Node that builds it.
 */
#include <node_api.h>
#include <v8.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static napi_value Trim(napi_env env, napi_callback_info info) {
  (void)info;
  int released = -1;
#if defined(__GLIBC__)
  released = malloc_trim(0);
#endif
  napi_value result;
  napi_create_int32(env, released, &result);
  return result;
}

static napi_value ReduceHeap(napi_env env, napi_callback_info info) {
  (void)info;
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  // On the isolate's own thread: starts incremental marking now (nothing when a GC is already
  // marking), and V8 puts the level back to "none" itself once it has acted on it.
  isolate->MemoryPressureNotification(v8::MemoryPressureLevel::kModerate);
  napi_value result;
  napi_get_undefined(env, &result);
  return result;
}

NAPI_MODULE_INIT() {
#if defined(__GLIBC__)
  mallopt(M_ARENA_MAX, 1);
#endif
  napi_value fn;
  napi_create_function(env, "mallocTrim", NAPI_AUTO_LENGTH, Trim, NULL, &fn);
  napi_set_named_property(env, exports, "mallocTrim", fn);
  napi_create_function(env, "reduceHeap", NAPI_AUTO_LENGTH, ReduceHeap, NULL, &fn);
  napi_set_named_property(env, exports, "reduceHeap", fn);
  return exports;
}
