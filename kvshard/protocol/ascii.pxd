# Compiled by Cython (pure-Python mode) from ascii.py; see framework/extensions.py.
