"""Lightning callbacks of the project."""
