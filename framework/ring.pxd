# Compiled by Cython (pure-Python mode) from ring.py; see framework/extensions.py.
