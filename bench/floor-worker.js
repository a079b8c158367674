// The floor of `GET /health` in `scripts/bench`: a plain JavaScript Worker
// answering a small JSON body, served by the same workerd as the functions.
// What it costs per request is workerd's own cost; what /health costs above
// it is the function's (its wasm, its glue and its pipeline).
export default {
  fetch() {
    return new Response('{"status":"ok"}', {
      headers: { "content-type": "application/json" },
    });
  },
};
