"""Privacy: the training modes, face obfuscation (blur, mosaic, zero), P3M-CP and offline anonymizing.

- :mod:`p3m.privacy.modes`: one class per training privacy mode (conf/privacy): what training may
  read and what it does to a sample (PPT, none, obfuscate, P3M-CP).
- :mod:`p3m.privacy.obfuscate`: pure functions that obfuscate a face mask minus the alpha
  transition band (the P3M-10k procedure), and :class:`FaceObfuscator` for configs.
- :mod:`p3m.privacy.detectors`: a registry of pluggable face detectors (optional packages).
- :mod:`p3m.privacy.anonymizer`: detect, obfuscate and write a P3M-style folder
  (``p3m anonymize``).
"""

from p3m.privacy.obfuscate import (
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
