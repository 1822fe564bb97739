"""The executable reference model of the kernel pieces iomemfuzz explores.

Pure, deterministic, standard library only; never imports ``iomemfuzz.fuzz``.
"""
