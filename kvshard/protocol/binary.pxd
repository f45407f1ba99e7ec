# Compiled by Cython (pure-Python mode) from binary.py; see framework/extensions.py.
