#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang into build-fuzz/ and runs
# each one for SECONDS (default 60) on a scratch copy of its seed corpus, so the
# committed seeds stay small. Exits 1 if any target found a crash, a leak or a
# timeout, and prints the reproducer (rerun it with: build-fuzz/tests/fuzz/<target> <file>).
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

targets=(fuzz_frame fuzz_handshake fuzz_addrlist fuzz_jscan fuzz_http1 fuzz_url fuzz_wsframe fuzz_log fuzz_resolve fuzz_etcd)
declare -A dicts=([fuzz_frame]=json.dict [fuzz_jscan]=json.dict [fuzz_http1]=http1.dict [fuzz_etcd]=json.dict)

CC=clang cmake -S . -B build-fuzz -DFUZZ=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"

artifacts=$root/build-fuzz/artifacts
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "$artifacts/$t"
    cp tests/fuzz/corpus/"$t"/* "$work/$t"/ 2>/dev/null || true
    args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$artifacts/$t/")
    if [[ -n ${dicts[$t]:-} ]]; then
        args+=(-dict="tests/fuzz/${dicts[$t]}")
    fi
    log=$artifacts/$t.log
    echo "== $t: ${secs}s (log: $log)"
    before=$(ls "$artifacts/$t" | wc -l)
    if build-fuzz/tests/fuzz/"$t" "${args[@]}" "$work/$t" >"$log" 2>&1; then
        grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" | tr '\n' ' ' || true
        echo "-> ok, corpus $(ls "$work/$t" | wc -l) inputs"
    else
        failed+=("$t")
        echo "-> FAILED"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*check failed|jscan accepts|jansson accepts)' "$log" | head -5 || true
        if [[ $(ls "$artifacts/$t" | wc -l) -gt $before ]]; then
            for f in $(ls -t "$artifacts/$t" | head -$(( $(ls "$artifacts/$t" | wc -l) - before ))); do
                echo "   reproducer: $artifacts/$t/$f"
                echo "   rerun:      build-fuzz/tests/fuzz/$t $artifacts/$t/$f"
            done
        else
            tail -20 "$log"
        fi
    fi
done

if ((${#failed[@]})); then
    echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${secs}s without findings"
