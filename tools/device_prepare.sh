#!/bin/bash
# Make the checkout ready for one training call of a lent GPU machine (tools/device_ensemble.sh,
# tools/device_train.sh), and put it back afterwards. Run from the project's root.
#
#   bash tools/device_prepare.sh            # before the call
#   bash tools/device_prepare.sh restore    # after it
#
# Before: writes the pack data/fer2013.npz (FER2013's JPEG bytes and the FER+ votes, about 41 MB; from
# DATA, default ../shared/fer2013) unless one with the votes exists; downloads into .whl/ the wheels that the GPU machine
# lacks (keras, namex, optree at the versions of this .venv, for its Python 3.12) unless they are there;
# and moves the tracked files of over 512 KiB, which training does not read (the served weights, the
# browser's LiteRT runtime, the committed teachers, the sample clip), to /tmp/device-stash, since a call
# carries at most 64 MiB with the checkout (45 MiB so, on 2026-12-07; 65 with those files).
# It prints what the call will carry; name data/fer2013.npz and .whl in the call's carry.
# restore: moves them back (git checkout also restores them: they are tracked).
set -euo pipefail
stash=/tmp/device-stash
if [ "${1:-}" = restore ]; then
  if [ -d "$stash" ]; then (cd "$stash" && find . -type f -print0) | while IFS= read -r -d '' f; do
    mkdir -p "$(dirname "$f")"; mv "$stash/$f" "$f"; done; fi
  rm -rf "$stash"
  git status --short | grep '^ D' && { echo "tracked files still missing (git checkout -- FILE)" >&2; exit 1; }
  echo "restored"; exit 0
fi
python=${PYTHON:-.venv/bin/python}
data=${DATA:-../shared/fer2013}
if ! "$python" -c "import numpy, sys; sys.exit('train_votes' not in numpy.load('data/fer2013.npz').files)" 2>/dev/null; then
  "$python" -m tools.train_jax pack --data "$data" --out data/fer2013.npz  # none yet, or one without the votes
fi
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
for package in keras namex optree; do
  version=$("$python" -c "import importlib.metadata as m; print(m.version('$package'))")
  ls .whl/"$package"-"$version"-*.whl > /dev/null 2>&1 || "$python" -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$package==$version"
done
mkdir -p "$stash"
git ls-files -z | while IFS= read -r -d '' f; do
  if [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 524288 ]; then mkdir -p "$stash/$(dirname "$f")"; mv "$f" "$stash/$f"; fi
done
echo "moved to $stash: $(cd "$stash" && find . -type f | sort | tr '\n' ' ')"
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | { du -cb --files0-from=- 2>/dev/null || true; } \
  | tail -1 | cut -f1)  # du fails on the files moved out, and still adds up the rest
carried=$(du -cb data/fer2013.npz .whl | tail -1 | cut -f1)
mib=$(( (tree + carried + 1048575) / 1048576 ))
echo "the call carries $mib MiB (checkout $((tree / 1048576)), pack and wheels $((carried / 1048576))) of 64"
if [ "$mib" -gt 63 ]; then echo "over the call's 64 MiB: move more out of the checkout" >&2; exit 1; fi
