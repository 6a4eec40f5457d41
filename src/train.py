"""Train P3M-Net (and optionally test it).

From a clone, without installing: ``python src/train.py [key=value ...]``; installed, ``p3m train``
is the same command. Keys: conf/train.yaml; examples and exit codes: src/p3m/tasks/train.py.
"""

from p3m.tasks.train import main

if __name__ == "__main__":
    main()
