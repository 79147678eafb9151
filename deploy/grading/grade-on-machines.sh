#!/usr/bin/env bash
# Grade a class on several machines over ssh, then merge: the plain multi-machine recipe.
#
#   deploy/grading/grade-on-machines.sh BUNDLE OUTPUT HOST [HOST ...] -- GRADE-ARGS...
#
# BUNDLE   a folder with everything the grading reads: the exercise, the hidden
#          checkpoints, the parameters file and the submissions folder;
# OUTPUT   where the merged gradebook goes (the shards are kept in OUTPUT-shards/);
# HOST     ssh destinations (user@machine), one shard each; `local` grades on this
#          machine without ssh;
# GRADE-ARGS  `labkit grade` arguments with paths relative to BUNDLE, e.g.
#          exercise.ipynb submissions/ --hidden hidden.py --params-file params.json
#
# Every host needs the course installed at the same path as here (LABKIT_DIR, default
# this checkout; `./course.sh setup` there); files travel as tar over ssh. Each host grades shard I of N
# with the same sandbox as on one machine; a failed shard is reported and the merge
# refuses to run without it, so re-running the script (or that host's command) is safe.
set -euo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ "$#" -ge 4 ] || usage
BUNDLE="$(cd "$1" && pwd)"; OUTPUT="$2"; shift 2
HOSTS=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do HOSTS+=("$1"); shift; done
[ "${1:-}" = "--" ] || usage
shift
[ "${#HOSTS[@]}" -ge 1 ] && [ "$#" -ge 1 ] || usage

LABKIT_DIR="${LABKIT_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
LABKIT="${LABKIT:-$LABKIT_DIR/.venv/bin/labkit}"
RUN_ID="labkit-grade-$(date +%s)-$$"
N="${#HOSTS[@]}"
SHARDS="$OUTPUT-shards"
mkdir -p "$SHARDS"
ARGS="$(printf '%q ' "$@")"

on() {  # on HOST COMMAND: run a shell command on a host
    if [ "$1" = local ]; then bash -c "$2"; else ssh -o BatchMode=yes "$1" "$2"; fi
}
send() {  # send HOST DIR REMOTE_DIR: a local folder's content to a host
    tar -C "$2" -cf - . | on "$1" "mkdir -p $3 && tar -C $3 -xf -"
}
fetch() {  # fetch HOST REMOTE_DIR DIR: a host's folder's content to a local folder
    rm -rf "$3" && mkdir -p "$3"
    on "$1" "tar -C $2 -cf - ." | tar -C "$3" -xf -
}

pids=()
for i in "${!HOSTS[@]}"; do
    host="${HOSTS[$i]}"; shard="$((i + 1))/$N"; work="/tmp/$RUN_ID-$((i + 1))"
    (
        send "$host" "$BUNDLE" "$work/bundle"
        on "$host" "cd $work/bundle && $LABKIT grade $ARGS --quiet --shard $shard -o $work/out"
        fetch "$host" "$work/out" "$SHARDS/shard-$((i + 1))"
        on "$host" "rm -rf $work"
        echo "shard $shard graded on $host"
    ) > "$SHARDS/shard-$((i + 1)).log" 2>&1 &
    pids+=("$!")
done
failed=0
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "shard $((i + 1))/$N on ${HOSTS[$i]} failed: see $SHARDS/shard-$((i + 1)).log" >&2
        failed=1
    fi
done
[ "$failed" -eq 0 ] || exit 1
shards=()
for i in "${!HOSTS[@]}"; do shards+=("$SHARDS/shard-$((i + 1))"); done
exec "$LABKIT" grade merge "${shards[@]}" -o "$OUTPUT"
