"""The Optuna sampler's seed for a study that may be continued: ``${study_seed:BASE,STORAGE,NAME}``.

A fixed seed makes a sweep reproducible, but a study continued in the same storage (``sqlite:///...``)
would then propose trial 0's parameters again, and every startup trial after it. The seed is the base
plus the number of trials the study already holds: a new study uses the base, a continued one moves
on to new points, and both stay reproducible.
"""

from __future__ import annotations

from omegaconf import OmegaConf

RESOLVER = "study_seed"


def study_seed(base: int, storage: str | None, study_name: str | None) -> int:
    """``base`` plus the number of trials of ``study_name`` already in ``storage`` (none: ``base``)."""
    if not storage:
        return int(base)
    import optuna  # only sweeps pay for the import

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # no such study yet: the sweep creates it
        return int(base)
    return int(base) + len(study.trials)


OmegaConf.register_new_resolver(RESOLVER, study_seed, replace=True)
