"""Resolve a docstring's Python reference to the one documented object it names.

The docstrings name classes and functions as their module imports them (``P3MNet``,
``load_checkpoint_state``) or by a package's re-export (``p3m.models.load_model``), which reads well
in the code. Sphinx looks a name up only in the current module and under its exact dotted name; this
hook then looks for the single documented object with that last name (for a dotted name: the same
Python object). A name that matches nothing, or several objects, stays a broken reference, and the
strict build fails on it.
"""

from __future__ import annotations

import importlib
from typing import Any

from docutils import nodes
from sphinx.util.nodes import make_refnode


def _python_object(name: str) -> object | None:
    """The object a dotted name documents (module attributes and class members), or None."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def resolve_short_name(app: Any, env: Any, node: Any, contnode: nodes.Element) -> nodes.Element | None:
    """Sphinx ``missing-reference``: the unique py object whose name ends with ``.<target>``."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    domain = env.get_domain("py")
    short = target.rsplit(".", 1)[-1]
    matches = [
        (name, obj)
        for name, obj in domain.objects.items()
        if (name == target or name.endswith("." + target) or name.endswith("." + short)) and not obj.aliased
    ]
    if "." in target:
        suffix = [(n, o) for n, o in matches if n == target or n.endswith("." + target)]
        wanted = _python_object(target)  # a re-export (p3m.models.load_model): that object's name
        matches = suffix or [(n, o) for n, o in matches if wanted is not None and _python_object(n) is wanted]
    # p3m.load_model and p3m.Predictor are documented twice, as the public API and where they live:
    # names of one Python object are one target, the shortest name
    objects = [_python_object(name) for name, _ in matches]
    if len(matches) > 1 and objects[0] is not None and all(o is objects[0] for o in objects):
        matches = sorted(matches, key=lambda match: len(match[0]))[:1]
    if len(matches) != 1:
        return None
    name, obj = matches[0]
    return make_refnode(app.builder, node["refdoc"], obj.docname, obj.node_id, contnode, name)


def setup(app: Any) -> dict[str, Any]:
    """Register the hook."""
    app.connect("missing-reference", resolve_short_name)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
