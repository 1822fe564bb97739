#!/usr/bin/env bash
# Run .clusterfuzzlite/build.sh the way ClusterFuzzLite's build_fuzzers does, without docker,
# then smoke-test every target it produced.
#
#   tools/cflite_local_build.sh [--pyinstaller] [OUT]     (OUT default: work/cflite/out)
#
# What the engine does and this script imitates:
#   * the checkout is copied to $SRC/iomemfuzz (Dockerfile: COPY . $SRC/iomemfuzz; here the
#     files git tracks or would track, i.e. without .venv/, work/ and other ignored files)
#     and build.sh to $SRC/build.sh;
#   * build.sh runs in $SRC/iomemfuzz with SRC, OUT, WORK, SANITIZER=address,
#     FUZZING_ENGINE=libfuzzer, FUZZING_LANGUAGE=python, ARCHITECTURE=x86_64;
#   * the image's Python has atheris preinstalled: here a virtualenv kept in
#     work/cflite/venv (created on first use; build.sh's `pip3 install .` goes into it, never
#     into the project's .venv);
#   * compile_python_fuzzer is the stand-in tools/cflite/compile_python_fuzzer. With
#     --pyinstaller the venv also gets PyInstaller (from PyPI) and the stand-in makes the
#     real one-file bundle, as the image does (about 80 s per target); without it, a
#     launcher that gives the target the same bundle layout (a few seconds).
# Smoke test: each $OUT/<target> runs `-runs=100` on its unpacked seed corpus. A target
# that starts and then reports a finding (FindingError: the corpus does not record it yet)
# counts as working: the packaging is what is checked here. Exit status 0 when every
# target ran.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYINSTALLER=0
if [[ "${1:-}" == "--pyinstaller" ]]; then
  PYINSTALLER=1
  shift
fi
OUT=$(mkdir -p "${1:-$ROOT/work/cflite/out}" && cd "${1:-$ROOT/work/cflite/out}" && pwd)
VENV=${IOMEMFUZZ_CFLITE_VENV:-$ROOT/work/cflite/venv}
PYTHON=${IOMEMFUZZ_CFLITE_PYTHON:-python3}
# Must match the atheris pin of pyproject.toml (the image brings its own atheris).
ATHERIS="atheris>=2.3,<3.2"

if [[ ! -x "$VENV/bin/python3" ]]; then
  echo "== creating $VENV (the image's Python with atheris)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q "$ATHERIS"
fi
if [[ $PYINSTALLER == 1 ]]; then
  "$VENV/bin/pip" install -q pyinstaller
elif "$VENV/bin/python3" -c "import PyInstaller" 2>/dev/null; then
  # The stand-in uses PyInstaller whenever it imports; without --pyinstaller, it must not.
  "$VENV/bin/pip" uninstall -q -y pyinstaller
fi

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/cflite-build.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
export SRC="$SCRATCH/src" WORK="$SCRATCH/work" OUT
export SANITIZER=address FUZZING_ENGINE=libfuzzer FUZZING_LANGUAGE=python ARCHITECTURE=x86_64
mkdir -p "$SRC/iomemfuzz" "$WORK"
rm -rf "${OUT:?}"/*

echo "== copying the checkout to $SRC/iomemfuzz"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
   | while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done \
   | tar --null -T - -cf -) | tar -xf - -C "$SRC/iomemfuzz"
cp "$ROOT/.clusterfuzzlite/build.sh" "$SRC/build.sh"

echo "== bash \$SRC/build.sh (SRC=$SRC OUT=$OUT WORK=$WORK)"
(cd "$SRC/iomemfuzz" \
   && PATH="$VENV/bin:$ROOT/tools/cflite:$PATH" bash -eu "$SRC/build.sh")

echo "== smoke test"
status=0
found=0
for target in "$OUT"/*; do
  name=$(basename "$target")
  [[ -f "$target" && -x "$target" && "$name" != *.* ]] || continue
  found=1
  seeds="$SCRATCH/seeds-$name"
  mkdir -p "$seeds"
  if [[ -f "$OUT/${name}_seed_corpus.zip" ]]; then
    "$VENV/bin/python3" -m zipfile -e "$OUT/${name}_seed_corpus.zip" "$seeds"
  fi
  log="$SCRATCH/$name.log"
  if (cd "$SCRATCH" && "$target" -runs=100 "$seeds" >"$log" 2>&1); then
    echo "ok   $name: $(grep -a -m1 -o 'Done [0-9]* runs.*' "$log" || echo ran)"
  elif grep -aq "FindingError: finding" "$log"; then
    echo "ok   $name: runs; reports a finding the corpus does not record yet:"
    grep -a -m1 "FindingError: finding" "$log" | sed 's/^/       /'
  else
    echo "FAIL $name: it did not run; last lines:"
    tail -n 15 "$log" | sed 's/^/       /'
    status=1
  fi
done
if [[ $found == 0 ]]; then
  echo "FAIL: build.sh left no target in $OUT"
  status=1
fi
ls -l "$OUT"
exit $status
