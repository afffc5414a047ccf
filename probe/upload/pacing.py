"""How much an upload sends and when: the defaults ``kuzot run`` and ``kuzot upload``
show in their help.

Apart from the uploader so that the command line can print them without
importing the uploader, the store and SQLAlchemy before it has started anything.
"""

#: Send once this many measurements are waiting ...
DEFAULT_EVERY = 50
#: ... or once the oldest of them has waited this long (seconds).
DEFAULT_INTERVAL = 120.0
#: After a failed attempt the wait doubles, up to this.
MAX_INTERVAL = 1800.0

#: Measurements per request, and bytes per request (the collector's own limits win).
DEFAULT_BATCH_ITEMS = 100
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024
