"""What each command does: one module per task, each a Hydra application (``main``) over its config.

``p3m <task>`` and ``python src/<task>.py`` both run ``p3m.tasks.<task>.main``. :data:`TASKS` is
what ``p3m --help`` lists; it names the modules without importing them, so the help is instant.
"""

#: Every task and its one-line summary, in the order ``p3m --help`` lists them.
TASKS: dict[str, str] = {
    "train": "train P3M-Net on P3M-10k, synthetic or your own data (and test it)",
    "eval": "evaluate a checkpoint or existing mattes on the evaluation splits",
    "predict": "alpha mattes and cut-outs for photos, folders, globs or a video",
    "export": "export a checkpoint to ONNX, checked against PyTorch",
    "convert": "write the authors' released .pth as one of our checkpoints",
    "anonymize": "detect and obfuscate faces in a folder of portraits",
    "prepare": "estimate fg/bg (and pack) a P3M-10k-layout training set",
    "app": "serve the browser demo (Gradio)",
}
