#!/usr/bin/env bash
# Runs the Dockerfile's build without a Docker engine: each stage becomes a directory under a temp
# dir, COPY lines are read from the Dockerfile itself (so the two cannot drift), and the RUN steps are
# mirrored one by one (an unknown RUN fails the check: teach it here when the Dockerfile changes).
# Then, from the pruned runtime tree only, runs `cpuburst --help` and every subcommand's --help.
#   scripts/image-check.sh [--keep]      (--keep leaves the temp dir for inspection)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dockerfile="$root/Dockerfile"
keep=false
[ "${1:-}" = "--keep" ] && keep=true
work="$(mktemp -d "${TMPDIR:-/tmp}/cpuburst-image-XXXXXX")"
cleanup() { if $keep; then echo "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
log() { printf '[image-check] %s\n' "$*"; }

declare -A workdir=()   # stage -> its WORKDIR inside the image
stage=""
stage_dir() { echo "$work/stage-$1"; }
# Maps an image path of stage $1 (absolute, or relative to its WORKDIR) to the local directory.
local_path() {
  local st="$1" p="$2" wd="${workdir[$1]:-/}"
  case "$p" in
    "$wd"/*) p="${p#"$wd"/}" ;;
    "$wd") p="." ;;
    /usr/local/bin/*) p="usr-local-bin/${p#/usr/local/bin/}" ;;
    /*) echo "image-check: path $p of stage $st is outside its WORKDIR $wd" >&2; return 1 ;;
  esac
  echo "$(stage_dir "$st")/$p"
}

do_copy() { # do_copy <from-stage|""> src... dest
  local from="$1"; shift
  local args=("$@") dest="${args[-1]}"; unset 'args[-1]'
  local target; target="$(local_path "$stage" "$dest")"
  for src in "${args[@]}"; do
    local s
    if [ -n "$from" ]; then s="$(local_path "$from" "$src")"; else s="$root/$src"; fi
    [ -e "$s" ] || { echo "image-check: COPY source $src does not exist ($s)" >&2; return 1; }
    if [ "${#args[@]}" -gt 1 ] || [[ "$dest" == */ ]]; then mkdir -p "$target"; cp -a "$s" "$target/"
    else mkdir -p "$(dirname "$target")"; rm -rf "$target"; cp -a "$s" "$target"; fi
  done
}

do_run() { # mirrors the RUN steps this Dockerfile uses
  local cmd="$1" dir; dir="$(local_path "$stage" "${workdir[$stage]:-/}")"
  case "$cmd" in
    "npm ci --no-audit --no-fund")
      # The build stage only needs the full dependency tree for tsc. When the repo's node_modules was
      # installed from this very lockfile (npm's hidden lockfile says so), link it instead of a second
      # full install; IMAGE_CHECK_FULL=1 forces the real npm ci.
      if [ "${IMAGE_CHECK_FULL:-0}" != 1 ] && [ -f "$root/node_modules/.package-lock.json" ] &&
        node -e 'const [a,b]=process.argv.slice(1).map(f=>JSON.parse(require("fs").readFileSync(f,"utf8")).packages);
          for (const k of Object.keys(b)) if (k !== "" && !(b[k].optional && !a[k]) && a[k]?.version !== b[k].version) process.exit(1);' \
          "$root/node_modules/.package-lock.json" "$dir/package-lock.json"; then
        ln -s "$root/node_modules" "$dir/node_modules"; log "(build stage: reusing the repo's node_modules, same lockfile)"
      else
        (cd "$dir" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error)
      fi ;;
    "npm ci --omit=dev --no-audit --no-fund && npm cache clean --force")
      # The cache clean only shrinks the image layer; here it would wipe the shared npm cache.
      (cd "$dir" && npm ci --omit=dev --no-audit --no-fund --prefer-offline --loglevel=error) ;;
    "npx tsc -p tsconfig.build.json && chmod +x dist/cli.js")
      (cd "$dir" && npx tsc -p tsconfig.build.json && chmod +x dist/cli.js) ;;
    "ln -s /app/dist/cli.js /usr/local/bin/cpuburst")
      mkdir -p "$(stage_dir "$stage")/usr-local-bin"
      ln -s "$(local_path "$stage" /app/dist/cli.js)" "$(stage_dir "$stage")/usr-local-bin/cpuburst" ;;
    *) echo "image-check: unknown RUN step: $cmd (mirror it in scripts/image-check.sh)" >&2; return 1 ;;
  esac
}

# Join continuation lines, drop comments, then interpret.
n=0
while IFS= read -r line; do
  read -r -a words <<<"$line" || true
  [ "${#words[@]}" -eq 0 ] && continue
  case "${words[0]}" in
    FROM)
      n=$((n + 1))
      if [ "${#words[@]}" -ge 4 ] && [ "${words[2]^^}" = AS ]; then stage="${words[3]}"; else stage="final"; fi
      mkdir -p "$(stage_dir "$stage")"; workdir[$stage]="/"; log "stage $stage" ;;
    WORKDIR) workdir[$stage]="${words[1]}" ;;
    COPY)
      if [[ "${words[1]}" == --from=* ]]; then do_copy "${words[1]#--from=}" "${words[@]:2}"
      else do_copy "" "${words[@]:1}"; fi ;;
    RUN) log "RUN ${line#RUN }"; do_run "${line#RUN }" ;;
    ARG | ENV | LABEL | USER | EXPOSE | ENTRYPOINT | CMD | HEALTHCHECK) ;;
    *) echo "image-check: unsupported instruction ${words[0]}" >&2; exit 1 ;;
  esac
done < <(sed -e 's/[[:space:]]*$//' -e '/^[[:space:]]*#/d' "$dockerfile" | sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta')
[ "$stage" = final ] || { echo "image-check: the last stage must be the unnamed runtime stage" >&2; exit 1; }

final="$(stage_dir final)"
app="$(local_path final /app)"
bin="$final/usr-local-bin/cpuburst"
[ -x "$bin" ] || { echo "image-check: no executable cpuburst on PATH in the image" >&2; exit 1; }
for dev in typescript tsx @biomejs/biome fast-check kubernetes-models; do
  if [ -e "$app/node_modules/$dev" ]; then echo "image-check: dev dependency $dev is in the runtime image" >&2; exit 1; fi
done
[ -d "$app/node_modules/@kubernetes/client-node" ] || { echo "image-check: runtime dependencies missing" >&2; exit 1; }

# Run from / with a bare environment, as the container would.
run_bin() { (cd / && env -i PATH="$(dirname "$(command -v node)"):/usr/bin:/bin" HOME="$work" NODE_ENV=production "$bin" "$@"); }
out="$(run_bin --help)"
echo "$out" | grep -q '^Usage: cpuburst <command>' || { echo "image-check: cpuburst --help printed: $out" >&2; exit 1; }
commands="$(echo "$out" | awk '/^Commands:/{f=1;next} f && /^  [a-z]/{print $1}')"
[ -n "$commands" ] || { echo "image-check: no commands listed by cpuburst --help" >&2; exit 1; }
failed=0
for c in $commands; do
  if help="$(run_bin "$c" --help 2>&1)" && echo "$help" | grep -q 'Usage:'; then log "cpuburst $c --help: ok"
  else failed=1; echo "image-check: cpuburst $c --help failed: $(echo "$help" | head -5)" >&2; fi
done
log "runtime node_modules: $(du -sm "$app/node_modules" | cut -f1) MB, dist: $(du -sm "$app/dist" | cut -f1) MB"
[ $failed -eq 0 ] || exit 1
log "ok: image steps and every subcommand's --help work from the pruned tree"
