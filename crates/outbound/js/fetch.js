// The bounded outbound call inside workerd, in one crossing of the wasm
// boundary each way: the request goes in as plain values, the outcome comes
// back as one object, and the runtime's own fetch, AbortSignal.timeout and
// body reader do the work. reqwest's wasm layer instead crossed once per
// request header, once per response header (each one JSON-stringified and
// parsed again) and once per body chunk, plus a Rust timer per call.
//
// Header lines are `name:value\n` (a name never holds `:`, a value never a
// line break).

/**
 * Sends the request and reads the whole answer within `timeoutMs` (the
 * signal aborts the body's reading too), at most `cap` body bytes. Never
 * rejects: resolves to `{ status, body }` or `{ failure }`, where failure
 * is "timeout", "too_large" (with the status) or "lost: <why>".
 */
export async function boundedFetch(method, url, headerLines, body, timeoutMs, cap) {
  const signal = AbortSignal.timeout(timeoutMs);
  const headers = new Headers();
  for (const line of headerLines.split("\n")) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon), line.slice(colon + 1));
  }
  // `body` is a view into wasm memory: copied before anything awaits.
  const init = { method, headers, signal, body: body.length === 0 ? undefined : body.slice() };
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    return failed(signal, e);
  }
  const status = response.status;
  if (response.body === null) return { status, body: new Uint8Array(0) };
  const declared = response.headers.get("content-length");
  if (declared !== null && Number(declared) > cap) {
    response.body.cancel().catch(() => {});
    return { failure: "too_large", status };
  }
  const reader = response.body.getReader();
  const chunks = [];
  let length = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      length += value.length;
      if (length > cap) {
        reader.cancel().catch(() => {});
        return { failure: "too_large", status };
      }
      chunks.push(value);
    }
  } catch (e) {
    return failed(signal, e);
  }
  if (chunks.length === 1) return { status, body: chunks[0] };
  const whole = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    whole.set(chunk, at);
    at += chunk.length;
  }
  return { status, body: whole };
}

function failed(signal, e) {
  return { status: 0, failure: signal.aborted ? "timeout" : "lost: " + String(e?.message ?? e) };
}
