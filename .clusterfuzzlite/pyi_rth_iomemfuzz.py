"""PyInstaller runtime hook of the packaged fuzz targets (ClusterFuzzLite, OSS-Fuzz).

It runs inside the one-file bundle before the target script. build.sh packs the list of
signatures the corpus already records (``iomemfuzz export-seeds --known``) as
``known-signatures`` at the bundle root; pointing ``IOMEMFUZZ_KNOWN`` at it makes the
target crash only on findings the corpus does not hold yet, so a pull request is not failed
by a kernel bug the project already documents. An explicit ``IOMEMFUZZ_KNOWN`` wins.
"""

import os
import sys

_bundle = getattr(sys, "_MEIPASS", None)
if _bundle:
    _known = os.path.join(_bundle, "known-signatures")
    if os.path.isfile(_known):
        os.environ.setdefault("IOMEMFUZZ_KNOWN", _known)
