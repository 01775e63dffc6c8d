#!/usr/bin/env bash
# Exercise deploy/Dockerfile's build stage without a container engine:
#
# 1. the build context as `docker build` would send it (tracked and new files, less
#    .dockerignore) is copied into a clean temporary folder, and every `COPY` source of
#    both stages must be in it; the copied workspace must resolve with its own Cargo.lock;
# 2. the build stage's `ENV` and `RUN` lines run, in order, with the stage's absolute
#    folders (/src, /out) mapped to folders of this run;
# 3. every `COPY --from=build` source must exist afterwards.
#
# Usage: deploy/check-build.sh [--in-tree] [WORKDIR]
#   By default the RUN steps run in the clean copy (a full build unless CARGO_TARGET_DIR
#   names a warm target folder). --in-tree runs them in this checkout instead, with the
#   caller's CARGO_TARGET_DIR: after `cargo test` nothing is rebuilt, which is what CI
#   does (`deploy::` tests). WORKDIR (default: a new temporary folder) is kept on failure.
set -euo pipefail

in_tree=0
if [ "${1:-}" = "--in-tree" ]; then in_tree=1; shift; fi
root="$(cd "$(dirname "$0")/.." && pwd)"
given_work="${1:-}"
work="${given_work:-$(mktemp -d -t impressox-check-build.XXXXXX)}"
mkdir -p "$work/src" "$work/out"
dockerfile="$root/deploy/Dockerfile"
say() { printf 'check-build: %s\n' "$*" >&2; }

# Logical lines of the Dockerfile (continuations joined, comments dropped).
lines() {
  sed -e 's/[[:space:]]*$//' "$dockerfile" | awk '
    /^[[:space:]]*#/ { next }
    { if (sub(/\\$/, "")) { buf = buf $0 " "; next } print buf $0; buf = "" }'
}

# /src and /out of the image, mapped to this run's folders.
map() {
  local s="$1"
  s="${s//\/src\/target/${target_dir}}"
  s="${s//\/src/${src_dir}}"
  s="${s//\/out/${work}\/out}"
  printf '%s' "$s"
}

# 1. The build context, clean.
say "build context -> $work/src"
(
  cd "$root"
  git ls-files -z --cached --others --exclude-standard
) | while IFS= read -r -d '' f; do
  # .dockerignore: a line is a path prefix or a `**/name` anywhere.
  skip=0
  while IFS= read -r pat; do
    case "$pat" in ''|'#'*) continue ;; esac
    case "$pat" in
      '**/'*) name="${pat#'**/'}"; case "/$f/" in *"/$name/"*) skip=1 ;; esac ;;
      *) case "$f" in "$pat"|"$pat"/*) skip=1 ;; esac ;;
    esac
  done < "$root/.dockerignore"
  if [ "$skip" = 0 ] && [ -e "$root/$f" ]; then
    mkdir -p "$work/src/$(dirname "$f")"
    cp -p "$root/$f" "$work/src/$f"
  fi
done
for must in Cargo.lock rust-toolchain.toml; do
  [ -f "$work/src/$must" ] || { say "the build context lacks $must"; exit 1; }
done
cargo metadata --locked --offline --format-version 1 \
  --manifest-path "$work/src/Cargo.toml" >/dev/null \
  || { say "the copied workspace does not resolve with its Cargo.lock"; exit 1; }

if [ "$in_tree" = 1 ]; then src_dir="$root"; else src_dir="$work/src"; fi
target_dir="${CARGO_TARGET_DIR:-$src_dir/target}"

# 2. The build stage's steps; 3. what the runtime stage copies.
stage=""
while IFS= read -r line; do
  [ -z "$line" ] && continue
  instr="${line%% *}"
  args="${line#* }"
  case "$instr" in
    FROM)
      case "$args" in *" AS "*) stage="${args##* AS }" ;; *) stage="" ;; esac
      say "stage $stage"
      ;;
    WORKDIR)
      [ "$stage" = build ] && cd "$(map "$args")"
      ;;
    ENV)
      if [ "$stage" = build ]; then
        for kv in $args; do
          key="${kv%%=*}"
          # A warm target folder given by the caller wins over the image's.
          if [ "$key" = CARGO_TARGET_DIR ] && [ -n "${CARGO_TARGET_DIR:-}" ]; then continue; fi
          export "$key=$(map "${kv#*=}")"
        done
        export CARGO_TARGET_DIR="$target_dir"
      fi
      ;;
    COPY)
      case "$args" in
        --from=build*)
          set -- ${args#--from=build }
          from="$(map "$1")"
          [ -e "$from" ] || { say "COPY --from=build: $1 ($from) was not built"; exit 1; }
          say "built: $1"
          ;;
        *)
          set -- $args
          if [ "$1" != "." ]; then
            [ -e "$work/src/$1" ] || { say "COPY: $1 is not in the build context"; exit 1; }
          fi
          ;;
      esac
      ;;
    RUN)
      if [ "$stage" = build ]; then
        cmd="$(map "$args")"
        say "RUN $cmd"
        (cd "$PWD" && bash -euo pipefail -c "$cmd")
      fi
      ;;
  esac
done < <(lines)

# The plugins' folder must hold .wasm files.
ls "$work/out/plugins.d/"*.wasm >/dev/null 2>&1 || { say "no plugins were built"; exit 1; }
say "ok: $(ls "$work/out/plugins.d" | wc -l) plugins, host binary at $(map /src/target/release/impressox)"
if [ -z "$given_work" ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$work"; fi
