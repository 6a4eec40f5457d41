"""Write the authors' released P3M-Net file as one of our checkpoints.

From a clone, without installing: ``python src/convert.py [key=value ...]``; installed, ``p3m convert``
is the same command. Keys: conf/convert.yaml; examples and exit codes: src/p3m/tasks/convert.py.
"""

from p3m.tasks.convert import main

if __name__ == "__main__":
    main()
