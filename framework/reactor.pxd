# Compiled by Cython (pure-Python mode) from reactor.py; see framework/extensions.py.
