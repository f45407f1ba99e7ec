# Compiled by Cython (pure-Python mode) from cache.py; see framework/extensions.py.
