"""Network stacks under one Protocol/Transport contract: posix/, native/ and the devices.

Imports only ``framework``. Empty until the POSIX backend lands (issue 3).
"""

__all__: list[str] = []
