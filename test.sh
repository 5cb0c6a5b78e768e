#!/usr/bin/env bash
# Builds everything and runs every test stage. This is the README's test command
# and exactly what CI runs (.ci/run). Stages:
#   a Debug (-O0) build with -Werror       | (build only: -O0 warns where -O2 does not)
#   unit + integration + interop (ctest)   | a 30 s soak (flat RSS and fds)
#   the ctest suites under ASan+UBSan      |
#   libFuzzer targets (60 s each)          | Helm chart and manifests checks
#   Dockerfile replay in a bookworm chroot | pod-level test in network namespaces
#   demo and benchmark smoke runs
# Set STAGES="build unit ..." to run a subset; FUZZ_SECONDS to change fuzz time.
set -uo pipefail
cd "$(dirname "$0")"
root=$(pwd)
stages=${STAGES:-"deps build debug test soak asan fuzz k8s image netns demo bench"}
jobs=$(nproc)
passed=0 failed=0 failures=()

run_stage() { # name command...
  local name=$1; shift
  case " $stages " in *" $name "*) ;; *) return 0 ;; esac
  echo "=== stage: $name"
  local t0=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); echo "=== stage $name: ok ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "=== stage $name: FAILED ($((SECONDS - t0)) s)"
  fi
}

deps() {
  scripts/install-deps.sh --test && (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
}
ctest_in() { # build-dir
  ctest --test-dir "$1" --output-on-failure -j"$jobs" --timeout 600
}

# Downloads (the debootstrap tarball, the helm package) are kept outside the work
# tree, so a fresh clone on the same machine does not fetch them again.
cache=${XDG_CACHE_HOME:-$HOME/.cache}/micro-sidecar
export IMAGE_CHECK_CACHE=${IMAGE_CHECK_CACHE:-$cache/image-check}
export HELM_CACHE_DIR=${HELM_CACHE_DIR:-$cache/helm}

run_stage deps  deps || true
run_stage build scripts/build.sh build -DBUILD_TESTING=ON
# Build only, no test run: GCC's -Wformat-truncation and friends see other value
# ranges at -O0 than at -O2, so a Debug build can fail where the release one passes.
run_stage debug scripts/build.sh build-debug -DCMAKE_BUILD_TYPE=Debug -DBUILD_TESTING=ON
run_stage test  ctest_in build
run_stage soak  tests/soak/run.sh --seconds 30 build
run_stage asan  bash -c 'scripts/build.sh build-asan -DSANITIZE=address,undefined &&
                         ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                         ctest --test-dir build-asan --output-on-failure -j'"$jobs"' --timeout 900'
[ -x scripts/fuzz.sh ]        && run_stage fuzz  scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
[ -x scripts/k8s-check.sh ]   && run_stage k8s   scripts/k8s-check.sh
[ -x scripts/image-check.sh ] && run_stage image scripts/image-check.sh
[ -x tests/netns/run.sh ]     && run_stage netns tests/netns/run.sh build
[ -x scripts/demo.sh ]        && run_stage demo  scripts/demo.sh --once
[ -x bench/run.sh ]           && run_stage bench bench/run.sh --smoke

echo
[ ${#failures[@]} -gt 0 ] && echo "failed stages: ${failures[*]}"
echo "test.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
