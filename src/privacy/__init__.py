"""Privacy modes: face obfuscation (blur, mosaic, zero) and offline face detection for anonymising.

- :mod:`src.privacy.obfuscate`: pure functions that obfuscate a face mask minus the alpha
  transition band (the P3M-10k procedure), and :class:`FaceObfuscator` for configs.
- :mod:`src.privacy.detectors`: a registry of pluggable face detectors (optional packages).
- :mod:`src.privacy.anonymizer`: detect, obfuscate and write a P3M-style folder
  (``python src/anonymize.py``).
"""

from src.privacy.obfuscate import (
    METHODS,
    FaceObfuscator,
    ObfuscationMethod,
    gaussian_blur,
    mosaic,
    obfuscate_face,
    obfuscation_region,
    transition_band,
)

__all__ = [
    "METHODS",
    "FaceObfuscator",
    "ObfuscationMethod",
    "gaussian_blur",
    "mosaic",
    "obfuscate_face",
    "obfuscation_region",
    "transition_band",
]
