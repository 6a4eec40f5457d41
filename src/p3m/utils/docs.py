"""Pointers into the README that error messages share."""

# Appended to errors about a missing dataset or weights file: the README section lists each file's
# official link, name, place and licence.
WHERE_TO_GET = "where to get it: README.md, section 'Data and weights'"
