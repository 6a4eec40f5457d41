"""Privacy: the training modes, face obfuscation (blur, mosaic, zero), P3M-CP and offline anonymizing.

- :mod:`src.privacy.modes`: one class per training privacy mode (conf/privacy): what training may
  read and what it does to a sample (PPT, none, obfuscate, P3M-CP).
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
