// The request and the response cross the wasm boundary once each, as one
// string (and the body's bytes), instead of one call per header, per URL
// part and per init field as the `worker` crate's types do. Measured in
// workerd, those per-item crossings were most of what a Rust route cost over
// a JavaScript one (README, Performance).
//
// Header lines are `name:value\n`: a header name never holds `:` and a value
// never holds a line break (the Fetch standard's Headers refuse both).

/** "METHOD\n/path?query\nname:value\n..." for `request`. */
export function requestHead(request) {
  const url = request.url;
  // A request URL is absolute (`scheme://host/...`); the path starts at the
  // first `/` after the authority.
  const start = url.indexOf("/", url.indexOf("//") + 2);
  let head = request.method + "\n" + (start < 0 ? "/" : url.slice(start)) + "\n";
  for (const [name, value] of request.headers) head += name + ":" + value + "\n";
  return head;
}

/**
 * The Response for `status`, header lines and `body` (a view into wasm
 * memory, copied here; empty means no body: 204 and 304 must have none).
 */
export function response(status, headerLines, body) {
  const headers = new Headers();
  for (const line of headerLines.split("\n")) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon), line.slice(colon + 1));
  }
  return new Response(body.length === 0 ? null : body.slice(), { status, headers });
}

/**
 * The body's first `limit + 1` bytes at most (one byte over is enough for
 * the pipeline to answer 413). A body whose declared length is over the
 * limit is not read at all, and one sent without a length (chunked, HTTP/2)
 * stops being read at the first chunk past the limit: workerd keeps an
 * isolate's wasm memory once grown, and a 100 MB body would end every
 * request on it.
 */
export async function requestBody(request, limit) {
  if (request.body === null) return new Uint8Array(0);
  const declared = request.headers.get("content-length");
  if (declared !== null && /^\s*\d+\s*$/.test(declared)) {
    if (Number(declared) > limit) return new Uint8Array(0);
    // workerd holds a body to its declared length: read at once.
    return new Uint8Array(await request.arrayBuffer());
  }
  const reader = request.body.getReader();
  const chunks = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const room = limit + 1 - length;
    chunks.push(value.length > room ? value.subarray(0, room) : value);
    length += Math.min(value.length, room);
    if (length > limit) {
      reader.cancel().catch(() => {});
      break;
    }
  }
  const body = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.length;
  }
  return body;
}
