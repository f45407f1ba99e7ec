# Compiled by Cython (pure-Python mode) from numbers.py; see framework/extensions.py.
