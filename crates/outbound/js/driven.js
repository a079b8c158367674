// The waiting half of src/driven.rs: a request's Rust future is pending on
// `promise`; await it here (a plain JavaScript await, no Rust closure, no
// extra microtask) and hand the outcome back in one crossing, until the
// future answers something that is not a promise: its value.
//
// `task` is the wasm-side `EdgeTask`; it is freed here, since the loop is
// its only owner.

export async function drive(task, promise) {
  try {
    for (;;) {
      let fulfilled = true;
      let value;
      try {
        value = await promise;
      } catch (e) {
        fulfilled = false;
        value = e;
      }
      const next = task.resume(fulfilled, value);
      if (!(next instanceof Promise)) return next;
      promise = next;
    }
  } finally {
    task.free();
  }
}
