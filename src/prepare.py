"""Estimate fg/bg (and pack) a P3M-10k-layout training set.

From a clone, without installing: ``python src/prepare.py [key=value ...]``; installed, ``p3m prepare``
is the same command. Keys: conf/prepare.yaml; examples and exit codes: src/p3m/tasks/prepare.py.
"""

from p3m.tasks.prepare import main

if __name__ == "__main__":
    main()
