#!/usr/bin/env bash
# Installs what building and running the stack needs on a fresh Debian 12
# machine with rustup and node/npm: the wasm target, worker-build,
# wasm-bindgen-cli (matching Cargo.lock), PostgreSQL 15 + pgTAP + pg_prove,
# Chromium + ChromeDriver (the example form's browser test), wrk (the load
# generator of scripts/bench), s3s-fs (the
# S3-compatible server the e2e tests check presigned URLs against),
# cargo-fuzz (scripts/fuzz),
# the npm tools (wrangler/workerd, PostgREST, wasm-opt, esbuild), and a
# Node.js 22 for wrangler itself (in .tools/node22; the machine's Node may be
# older, and wrangler 4 refuses to run on Node 20), and schemathesis from
# PyPI in a venv (.tools/schemathesis; `stack contract` runs it).
#
# Idempotent: each step checks what is there and skips, so a second run
# takes a second or two. Prints one line per tool.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

WORKER_BUILD_VERSION=0.8.7
S3S_FS_VERSION=0.14.1
SCHEMATHESIS_VERSION=4.32.5
CARGO_FUZZ_VERSION=0.13.2
APT_PACKAGES=(postgresql-15 postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl chromium chromium-driver wrk python3-venv)

# cargo installs land here; make them visible to the checks below.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

say() { printf '%-16s %s\n' "$1" "$2"; }
die() { echo "install-tools: $*" >&2; exit 1; }

# Prints the version in "<tool> --version" output (e.g. "wasm-bindgen 0.2.130").
version_of() { "$@" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true; }

# --- Rust target -------------------------------------------------------------
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "wasm32 target" "present"
else
  rustup target add wasm32-unknown-unknown >/dev/null
  say "wasm32 target" "installed"
fi

# --- worker-build --------------------------------------------------------------
# Another shell (or a provisioning step) may already be installing it; a
# second cargo install would race it for the same files, so wait instead.
if pgrep -f "^[^ ]*cargo install worker-build" >/dev/null; then
  say "worker-build" "install already running elsewhere; waiting for it"
  while pgrep -f "^[^ ]*cargo install worker-build" >/dev/null; do sleep 5; done
fi
if [[ "$(version_of worker-build)" == "$WORKER_BUILD_VERSION" ]]; then
  say "worker-build" "$WORKER_BUILD_VERSION present"
else
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --quiet
  say "worker-build" "$WORKER_BUILD_VERSION installed"
fi

# --- s3s-fs --------------------------------------------------------------------
# It verifies SigV4 presigned URLs (signature and expiry), which npm's s3rver
# does not; crates/stack/src/s3.rs starts it. 0.14.1 is the last release
# that builds with Rust 1.95 (0.15+ need 1.96).
if [[ "$(version_of s3s-fs)" == "$S3S_FS_VERSION" ]]; then
  say "s3s-fs" "$S3S_FS_VERSION present"
else
  cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked --quiet
  say "s3s-fs" "$S3S_FS_VERSION installed"
fi

# --- cargo-fuzz ------------------------------------------------------------------
# Builds and runs the libFuzzer targets in fuzz/ (scripts/fuzz). It wants a
# nightly toolchain; scripts/fuzz sets RUSTC_BOOTSTRAP=1 on the one stable
# toolchain instead.
if [[ "$(cargo fuzz --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)" == "$CARGO_FUZZ_VERSION" ]]; then
  say "cargo-fuzz" "$CARGO_FUZZ_VERSION present"
else
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
  say "cargo-fuzz" "$CARGO_FUZZ_VERSION installed"
fi

# --- wasm-bindgen-cli -----------------------------------------------------------
# The CLI must be exactly the wasm-bindgen version the functions link, or the
# generated JS and the wasm disagree; Cargo.lock is the source of truth.
if [[ ! -f Cargo.lock ]]; then
  cargo generate-lockfile --quiet
fi
bindgen_version="$(awk '
  $0 == "name = \"wasm-bindgen\"" { want = 1; next }
  want && /^version = / { gsub(/"/, "", $3); print $3; exit }
' Cargo.lock)"
if [[ -z "$bindgen_version" ]]; then
  say "wasm-bindgen" "not in Cargo.lock (no function crates yet); skipped"
elif [[ "$(version_of wasm-bindgen)" == "$bindgen_version" ]]; then
  say "wasm-bindgen" "$bindgen_version present"
else
  # No --locked: 0.2.130's own lockfile pins a yanked webpki-roots.
  cargo install wasm-bindgen-cli --version "$bindgen_version" --quiet
  say "wasm-bindgen" "$bindgen_version installed"
fi

# --- Debian packages ------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  say "apt packages" "present (${APT_PACKAGES[*]})"
else
  sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null || die "need root or sudo to install ${missing[*]}"
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "apt packages" "installed ${missing[*]}"
fi

# --- npm tools --------------------------------------------------------------------
# node_modules is stale when package-lock.json (or, before a lockfile exists,
# package.json) changed after the last install.
lock=package-lock.json
[[ -f "$lock" ]] || lock=package.json
if [[ -L node_modules ]]; then
  # A worktree borrowing another checkout's packages: `npm ci` would empty
  # the directory the link points to, under whoever else is using it.
  say "npm tools" "node_modules links to $(readlink node_modules); left alone"
elif [[ -d node_modules && ! "$lock" -nt node_modules ]]; then
  say "npm tools" "present"
else
  # Exactly the locked versions, or nothing: a lockfile `npm ci` refuses is
  # a bug to fix here (regenerate it with `npm install --package-lock-only`
  # and commit it, other platforms' optional packages included), not
  # something to paper over with `npm install`, which may resolve others.
  if ! npm ci --no-audit --no-fund --loglevel=error; then
    echo "install-tools: npm ci refused package-lock.json; fix the lockfile (see the comment above)" >&2
    exit 1
  fi
  # npm ci recreates node_modules but may leave its mtime older than the
  # lockfile's; touch it so the next run sees it as fresh.
  touch node_modules
  say "npm tools" "installed"
fi

# --- Node.js 22 for wrangler -----------------------------------------------------
# wrangler 4 needs Node.js 22 or newer; the stack and the tests run workerd
# directly and do not. CI checks `wrangler deploy --dry-run` with this one,
# from the npm package `node` (a prebuilt binary), kept out of the project's
# own dependencies.
NODE22=.tools/node22/node_modules/.bin/node
if [[ -x "$NODE22" && "$("$NODE22" --version)" == v22.* ]]; then
  say "node 22" "present"
else
  mkdir -p .tools/node22
  npm install --prefix .tools/node22 --no-audit --no-fund --loglevel=error node@22 >/dev/null
  "$NODE22" --version >/dev/null || die "node@22 from npm did not install a working node"
  say "node 22" "installed ($("$NODE22" --version))"
fi

# --- schemathesis ------------------------------------------------------------------
# The contract check (`stack contract`, in scripts/test): openapi.yaml against
# the running functions. Pinned, so a new release's new checks do not fail
# CI unannounced; raise it on purpose.
ST=.tools/schemathesis/bin/st
if [[ -x "$ST" && "$(version_of "$ST")" == "$SCHEMATHESIS_VERSION" ]]; then
  say "schemathesis" "$SCHEMATHESIS_VERSION present"
else
  rm -rf .tools/schemathesis
  python3 -m venv .tools/schemathesis || die "python3 -m venv failed (Debian: python3-venv)"
  .tools/schemathesis/bin/pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  [[ "$(version_of "$ST")" == "$SCHEMATHESIS_VERSION" ]] || die "schemathesis $SCHEMATHESIS_VERSION did not install a working st"
  say "schemathesis" "$SCHEMATHESIS_VERSION installed"
fi
