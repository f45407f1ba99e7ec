# Compiled by Cython (pure-Python mode) from meta_ops.py; see framework/extensions.py.
