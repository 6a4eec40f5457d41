"""Anonymize portraits offline: detect faces and obfuscate them.

From a clone, without installing: ``python src/anonymize.py [key=value ...]``; installed, ``p3m anonymize``
is the same command. Keys: conf/anonymize.yaml; examples and exit codes: src/p3m/tasks/anonymize.py.
"""

from p3m.tasks.anonymize import main

if __name__ == "__main__":
    main()
