# Compiled by Cython (pure-Python mode) from binary_session.py; see framework/extensions.py.
