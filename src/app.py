"""Serve the browser demo (Gradio): upload a portrait, get its matte and cut-out.

From a clone, without installing: ``python src/app.py [key=value ...]``; installed, ``p3m app``
is the same command. Keys: conf/app.yaml; examples and exit codes: src/p3m/tasks/app.py.
"""

from p3m.tasks.app import main

if __name__ == "__main__":
    main()
