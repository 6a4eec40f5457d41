"""Predict alpha mattes and cut-outs for photos, folders, globs or a video.

From a clone, without installing: ``python src/predict.py [key=value ...]``; installed, ``p3m predict``
is the same command. Keys: conf/predict.yaml; examples and exit codes: src/p3m/tasks/predict.py.
"""

from p3m.tasks.predict import main

if __name__ == "__main__":
    main()
