"""Sphinx configuration of the P3M documentation: ``make docs`` builds it into docs/_build/html.

Pages are Markdown (MyST); the API reference comes from the docstrings (autodoc + napoleon, Google
style) and the configuration reference from ``conf/`` (``_ext/config_reference.py``). The build is
offline (no intersphinx) and strict: ``make docs`` passes ``-W --keep-going -n``, so a broken
cross-reference, a missing page or anchor, or a docstring that does not parse fails it.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT / "src"), str(DOCS / "_ext")]  # this checkout's p3m, then our extension

import p3m  # noqa: E402

project = "P3M"
author = "the P3M contributors"
copyright = "2026, the P3M contributors"
release = version = p3m.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "config_reference",
    "short_names",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}  # .rst: the API stubs autosummary writes
root_doc = "index"
exclude_patterns = ["_build", "_generated/config_reference.md"]  # included by configuration.md
templates_path = ["_templates"]

# MyST: ```{directive}``` fences, $math$, ::: blocks, and anchors for headings down to ### so that pages
# can link to `page.md#a-heading`; a missing page or anchor is a warning, hence an error.
myst_enable_extensions = ["colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 3

# API reference: docstrings are Google style and use Sphinx roles; types come from the annotations.
autosummary_generate = True
autosummary_imported_members = False
# A module page documents what the module defines; a package's re-exports (its __all__) are documented
# where they are defined, so that every object has one page and one name to link to.
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_class_signature = "separated"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Every reference to our own code must resolve (nitpicky). Names of other libraries cannot resolve
# offline (no intersphinx), so they are named here instead of silenced one by one.
nitpicky = True
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(torch|numpy|np|lightning|pytorch_lightning|omegaconf|hydra|PIL|cv2|optuna|onnx|"
        r"onnxruntime|gradio|albumentations|scipy|skimage|pymatting|timm|torchmetrics|wandb|rich|tqdm|"
        r"pathlib|collections|typing|typing_extensions|enum|dataclasses|logging|argparse|subprocess|"
        r"concurrent|multiprocessing|os|io|json|re|signal|types|abc|contextlib|functools|numbers|"
        r"sqlalchemy|joblib|submitit|builtins|_io|ctypes|datetime|csv|threading|av|fractions|torchdata)(\..*)?",
    ),
    (
        r"py:.*",
        r"(Any|Callable|Iterable|Iterator|Mapping|MutableMapping|Sequence|Generator|Literal|Self|"
        r"Path|PathLike|Tensor|ndarray|NDArray|DictConfig|ListConfig|Module|LightningModule|Trainer|"
        r"NamedTuple|TypeVar|ClassVar|Protocol|Enum|IntEnum|Logger|Image|Namespace|Pool|Future)",
    ),
    (r"py:class", r"p3m\..*\.Result"),  # type variables of generic functions have no page
    (r"py:class", r"p3m\..*\._\w+"),  # private bases of public classes have no page
    (
        r"py:.*",
        r"(None|int|float|str|bytes|bool|dict|list|tuple|set|frozenset|object|type|slice|"
        r"complex|range|BaseException|Exception|ValueError|TypeError|KeyError|RuntimeError|OSError|"
        r"FileNotFoundError|FloatingPointError|KeyboardInterrupt|SystemExit|NotImplementedError|"
        r"ImportError|AttributeError|IndexError|NotImplemented|Ellipsis)",
    ),
    (r"py:.*", r"(T|K|V|P|R|_T|.*_co)"),  # type variables
    # napoleon reads "(N, 1, H, W) float: ..." of an attribute's docstring as a type: not references
    (r"py:class", r"([A-Z]|\d+|.*[ ()\[\],].*)"),
]


def _module_list() -> str:
    """The page that lists every module of the package, one generated page each (docs/api.md links it).

    A flat list, written at every build: a recursive autosummary generates nested stubs only on a
    second build, and a module added to the package must appear without editing the docs.
    """
    import pkgutil

    names = sorted(m.name for m in pkgutil.walk_packages(p3m.__path__, "p3m.") if m.name != "p3m.__main__")
    head = ["# Modules", "", "Every module of `src/p3m`, from its docstrings.", ""]
    table = ["```{eval-rst}", ".. autosummary::", "   :toctree: api", ""]
    return "\n".join([*head, *table, *(f"   {n}" for n in names), "```", ""])


_MODULES = DOCS / "_generated" / "modules.md"
_MODULES.parent.mkdir(exist_ok=True)
if not _MODULES.is_file() or _MODULES.read_text() != _module_list():  # unchanged: no rebuild
    _MODULES.write_text(_module_list())


html_theme = "furo"
html_title = f"P3M {version}"
html_static_path: list[str] = []
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}
