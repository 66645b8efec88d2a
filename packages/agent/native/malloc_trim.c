/*
 * bartoc's one native call: glibc's malloc_trim(0), which hands the free pages inside the malloc
 * heap back to the kernel. V8 parses the bundle in a ~11 MiB zone; glibc frees it but keeps it
 * mapped, since a live chunk sits above it (issue 17). Without glibc (musl, macOS) it is a no-op
 * that returns -1.
 */
#include <node_api.h>
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

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "mallocTrim", NAPI_AUTO_LENGTH, Trim, NULL, &fn);
  napi_set_named_property(env, exports, "mallocTrim", fn);
  return exports;
}
