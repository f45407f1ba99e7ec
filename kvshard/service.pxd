# Compiled by Cython (pure-Python mode) from service.py; see framework/extensions.py.
