# Compiled by Cython (pure-Python mode) from channel.py; see framework/extensions.py.
