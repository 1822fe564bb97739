#!/usr/bin/env python3
"""Fuzz target: every registered operation, all oracles, one kernel profile.

Invariant: any Program the decoder produces runs on a fresh modelled kernel without any
oracle reporting a violation.

Run directly (libFuzzer flags and corpus directories as usual; it must be started by its
path, because -fork/-jobs/-merge re-launch argv[0])::

    IOMEMFUZZ_PROFILE=v6.1-deb fuzz/targets/kernel_ops.py -use_value_profile=1 work/c

or through ``iomemfuzz fuzz``, which also minimizes and stores what it finds.
"""

import sys

from iomemfuzz.fuzz.targets import main

if __name__ == "__main__":
    main(sys.argv)
