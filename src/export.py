"""Export a trained P3M-Net to ONNX, checked against PyTorch.

From a clone, without installing: ``python src/export.py [key=value ...]``; installed, ``p3m export``
is the same command. Keys: conf/export.yaml; examples and exit codes: src/p3m/tasks/export.py.
"""

from p3m.tasks.export import main

if __name__ == "__main__":
    main()
