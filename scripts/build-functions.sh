#!/usr/bin/env bash
# Builds the Cloudflare Workers under functions/ to wasm with worker-build.
#
#   scripts/build-functions.sh            # every functions/*/ crate
#   scripts/build-functions.sh signup ... # only those named
#
# Output: functions/<name>/build/index.js + index_bg.wasm (what the local
# stack serves with workerd and what wrangler deploys).
#
# worker-build would download wasm-bindgen, wasm-opt and esbuild from a code
# host this machine cannot reach, so we hand it local binaries: the
# wasm-bindgen cargo installed (same version as Cargo.lock, see
# scripts/install-tools.sh) and the npm-installed wasm-opt and esbuild.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# FUNCTIONS_DIR lets the script build crates that live elsewhere (used to
# test it before any function existed); normally it is <repo>/functions.
functions_dir="${FUNCTIONS_DIR:-$root/functions}"

die() { echo "build-functions: $*" >&2; exit 1; }

WASM_BINDGEN_BIN="$(command -v wasm-bindgen || true)"
[[ -n "$WASM_BINDGEN_BIN" ]] || die "wasm-bindgen not found: run scripts/install-tools.sh"
WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt"
ESBUILD_BIN="$root/node_modules/.bin/esbuild"
for bin in "$WASM_OPT_BIN" "$ESBUILD_BIN"; do
  [[ -x "$bin" ]] || die "$bin not found: run scripts/install-tools.sh (npm ci)"
done
command -v worker-build >/dev/null || die "worker-build not found: run scripts/install-tools.sh"
export WASM_BINDGEN_BIN WASM_OPT_BIN ESBUILD_BIN

if [[ $# -gt 0 ]]; then
  names=("$@")
else
  names=()
  for manifest in "$functions_dir"/*/Cargo.toml; do
    [[ -e "$manifest" ]] || continue
    names+=("$(basename "$(dirname "$manifest")")")
  done
  [[ ${#names[@]} -gt 0 ]] || die "no crates under $functions_dir"
fi

for name in "${names[@]}"; do
  dir="$functions_dir/$name"
  [[ -f "$dir/Cargo.toml" ]] || die "no crate at $dir"
  echo "==> $name"
  (cd "$dir" && worker-build --release)
  wasm="$dir/build/index_bg.wasm"
  [[ -f "$wasm" && -f "$dir/build/index.js" ]] || die "$name: worker-build left no build/index.js + index_bg.wasm"
  # The name section (function names, about a sixth of the module) is
  # only for profiles and stack traces: what is deployed goes without it
  # (30-40 KB gzip less to upload and to compile at start-up).
  # KEEP_WASM_NAMES=1 keeps it, for a CPU profile with function names.
  if [[ "${KEEP_WASM_NAMES:-0}" != 1 ]]; then
    "$WASM_OPT_BIN" "$wasm" -all --strip-debug --strip-producers -o "$wasm"
  fi
  bytes=$(stat -c %s "$wasm")
  gzip_bytes=$(gzip -9c "$wasm" | wc -c)
  printf '%-24s %8d KB wasm  %8d KB gzip  (%s)\n' \
    "$name" $(((bytes + 1023) / 1024)) $(((gzip_bytes + 1023) / 1024)) "${wasm#"$root"/}"
done
