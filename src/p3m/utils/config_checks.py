"""Check an entry point's config up front: types, choices and ranges of the keys it reads; no unknown keys.

Hydra parses ``trainer.max_epochs=abc`` as the string ``"abc"`` and the run fails much later with a
bare ``TypeError``; ``test_strategy=hybird`` or ``data.batch_size=-1`` would fail only once the model
is loaded or the data module built; a misspelt key added with ``+`` (Hydra's own suggestion for a
key that does not exist) is silently ignored by entry points that read fixed keys. All of them
become one message naming the key, before any work.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig, OmegaConf

from p3m.utils.errors import UserError

TypeSpec = type | tuple[type, ...]
"""Accepted types of a value; ``float`` accepts integers too, ``int`` never accepts booleans."""

_NAMES = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    list: "a list ([a,b])",
    type(None): "null",
}
_MISSING = object()


@dataclass(frozen=True)
class ConfigCheck:
    """What one entry point checks before it starts.

    Attributes:
        types: Keys (dotted) the entry point reads, with the types they must have; absent keys pass.
        choices: Keys whose value must be one of a few names (compared as text: ``precision=32``).
        at_least: Keys whose number must be at least this (``null`` passes where the type allows it).
        known_keys_only: Refuse ``+key=value`` overrides that add keys the entry point's config does
            not have (config groups, ``+group=option``, stay allowed).
        free_form: Mappings that take any key (e.g. ``detector_kwargs``): ``+detector_kwargs.x=1`` passes.
    """

    types: Mapping[str, TypeSpec] = field(default_factory=dict)
    choices: Mapping[str, Collection[str]] = field(default_factory=dict)
    at_least: Mapping[str, float] = field(default_factory=dict)
    known_keys_only: bool = False
    free_form: tuple[str, ...] = ()

    def __call__(self, cfg: DictConfig) -> None:
        """Raise :class:`UserError` naming the first offending key."""
        check_types(cfg, self.types)
        check_values(cfg, self.choices, self.at_least)
        check_targets(cfg)
        if self.known_keys_only:
            check_added_keys(cfg, self.free_form)


# The package was called `src` before 0.2; a user's own config naming a class there would otherwise fail
# inside Hydra with "Error locating target 'src.privacy.modes.PPT'".
_OLD_PACKAGE = "src."


def check_targets(cfg: DictConfig) -> None:
    """Refuse a ``_target_`` in the old package (``src.*``), naming the key and the new name."""
    for key, value in _walk(OmegaConf.to_container(cfg, resolve=False), ""):
        if key.endswith("_target_") and isinstance(value, str) and value.startswith(_OLD_PACKAGE):
            new = "p3m." + value.removeprefix(_OLD_PACKAGE)
            raise UserError(f"{key}={value}: the package is called p3m since version 0.2; write {new}")


def _walk(node: object, prefix: str) -> list[tuple[str, object]]:
    if isinstance(node, Mapping):
        items = [(f"{prefix}{k}", v) for k, v in node.items()]
    elif isinstance(node, list):
        items = [(f"{prefix}[{i}]", v) for i, v in enumerate(node)]
    else:
        return []
    found = []
    for key, value in items:
        found.append((key, value))
        found.extend(_walk(value, f"{key}." if isinstance(value, Mapping) else key))
    return found


def _accepts(value: object, spec: TypeSpec) -> bool:
    types = spec if isinstance(spec, tuple) else (spec,)
    if isinstance(value, bool):  # bool is an int subclass: 'true' is no epoch count
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    if isinstance(value, ListConfig):
        return list in types
    return isinstance(value, types)


def check_types(cfg: DictConfig, types: Mapping[str, TypeSpec]) -> None:
    """Refuse the first key of ``types`` whose value in ``cfg`` has another type.

    Raises:
        UserError: e.g. ``trainer.max_epochs=abc: expected an integer``.
    """
    for key, spec in types.items():
        value = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)
        if value is _MISSING or _accepts(value, spec):
            continue
        types_ = spec if isinstance(spec, tuple) else (spec,)
        expected = " or ".join(_NAMES.get(t, t.__name__) for t in types_)
        raise UserError(f"{key}={value}: expected {expected}")


def check_values(
    cfg: DictConfig, choices: Mapping[str, Collection[str]], at_least: Mapping[str, float]
) -> None:
    """Refuse the first value that is not one of its ``choices`` or is below its ``at_least``.

    Raises:
        UserError: e.g. ``test_strategy=hybird: expected one of hybrid | resize | full``.
    """
    for key, allowed in choices.items():
        value = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)
        if value is not _MISSING and str(value) not in allowed:
            close = difflib.get_close_matches(str(value), list(allowed), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UserError(f"{key}={value}: expected one of {' | '.join(allowed)}{hint}")
    for key, minimum in at_least.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < minimum:
            raise UserError(f"{key}={value}: must be at least {minimum:g}")


def check_added_keys(cfg: DictConfig, free_form: tuple[str, ...] = ()) -> None:
    """Refuse ``+key=value`` overrides of keys the entry point's config does not define.

    Raises:
        UserError: naming the key, the closest known key and where the keys are listed.
    """
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    groups = set(hydra_cfg.runtime.choices)
    job = hydra_cfg.job.config_name  # predict, eval...: also when composed in tests (job.name: app)
    for override in OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task)):
        key = override.key_or_group
        if not override.is_add() or key in groups or key.split(".")[0] in free_form:
            continue
        parent, _, name = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        known = [str(k) for k in node if str(k) != name] if isinstance(node, DictConfig) else []
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {'.'.join([parent, close[0]]) if parent else close[0]}?)" if close else ""
        raise UserError(
            f"+{key}: {job} has no setting {key}{hint}; its settings are in conf/{job}.yaml (drop the '+')"
        )
