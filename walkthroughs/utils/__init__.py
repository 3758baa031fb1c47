"""Small pure helpers shared by the wire formats, the attribution logic and the flow (no I/O).

* ``caches``: every process-wide cache, one bounded policy and one reset.
* ``sharing``: one copy of each string that repeats across retained events.
* ``routes``: the 48 state routes Bytewax spreads evenly over any number of workers.
"""
