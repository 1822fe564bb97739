#!/bin/bash -eu
# Builds every atheris target in fuzz/targets/ for ClusterFuzzLite and OSS-Fuzz.
#
# Runs inside gcr.io/oss-fuzz-base/base-builder-python with the checkout as the working
# directory and $SRC, $OUT, $WORK set by the engine. For each target NAME it leaves in $OUT:
#   NAME, NAME.pkg         compile_python_fuzzer's wrapper and PyInstaller one-file bundle
#   NAME_seed_corpus.zip   its seeds: for kernel_ops the corpus' Programs as fuzz inputs
#                          (iomemfuzz export-seeds: operations and machine, as text), for
#                          program_text (the Program reader) the corpus files themselves
#   NAME.options           its libFuzzer flags (kernel_ops: the ones `iomemfuzz fuzz` uses)
#   NAME.dict              the words of the Program text: program_text's from
#                          tools/cflite/program_text_dict.py, kernel_ops' from
#                          iomemfuzz export-seeds --dict (its inputs are Program text too)
# Without docker: tools/cflite_local_build.sh runs this script with the same variables.

# The profile the packaged targets run: the harness default, named here because the
# seed corpus and the list of known findings are per profile.
PROFILE=v6.1-deb

# Install the project and its pinned dependencies (atheris is already in the image).
pip3 install .

for fuzzer in fuzz/targets/*.py; do
  name=$(basename -s .py "$fuzzer")
  # Targets are the executable scripts; __init__ is the harness they share.
  [[ -x "$fuzzer" && "$name" != _* ]] || continue

  stage="$WORK/iomemfuzz/$name"
  rm -rf "$stage"
  mkdir -p "$stage/seeds"
  # --collect-submodules: the harness imports the model modules and operation families by
  # name at run time, which PyInstaller's import scan cannot see.
  # model sources: coverage builds map back to them.
  # The runtime hook points the harness at the packed known-signatures, if any.
  extra=(--collect-submodules iomemfuzz --add-data "$PWD/model/*.py:iomemfuzz/model"
         --runtime-hook "$PWD/.clusterfuzzlite/pyi_rth_iomemfuzz.py")
  if [[ "$name" == program_text ]]; then
    # The reader's target reads Program files: the corpus files are its seeds, named by
    # SHA-1 as libFuzzer names inputs.
    find corpus -name '*.prog' -print0 | while IFS= read -r -d '' prog; do
      cp "$prog" "$stage/seeds/$(sha1sum < "$prog" | cut -c1-40)"
    done
  else
    # Seeds: the corpus' scenarios and this profile's findings, as text.
    # known-signatures: what the corpus already records, so the target crashes only on
    # new findings.
    python3 -m iomemfuzz.fuzz.cli export-seeds "$stage/seeds" --corpus corpus \
      --profile "$PROFILE" --known "$stage/known-signatures" --dict "$OUT/$name.dict"
    extra+=(--add-data "$stage/known-signatures:.")
  fi

  compile_python_fuzzer "$fuzzer" "${extra[@]}"

  rm -f "$OUT/${name}_seed_corpus.zip"
  seeds=("$stage"/seeds/*)
  if [ -e "${seeds[0]}" ]; then
    python3 -m zipfile -c "$OUT/${name}_seed_corpus.zip" "${seeds[@]}"
  fi
  for extension in options dict; do
    if [ -f ".clusterfuzzlite/$name.$extension" ]; then
      cp ".clusterfuzzlite/$name.$extension" "$OUT/"
    fi
  done
done
