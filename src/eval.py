"""Evaluate a checkpoint, or existing predictions, on the evaluation splits.

From a clone, without installing: ``python src/eval.py [key=value ...]``; installed, ``p3m eval``
is the same command. Keys: conf/eval.yaml; examples and exit codes: src/p3m/tasks/eval.py.
"""

from p3m.tasks.eval import main

if __name__ == "__main__":
    main()
