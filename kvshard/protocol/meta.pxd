# Compiled by Cython (pure-Python mode) from meta.py; see framework/extensions.py.
