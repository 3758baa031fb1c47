"""The dataflow: Bytewax wiring, and the pure pieces of what moves between its steps.

* ``flow``: ``build_flow``, its stages and the stateful adapters (the only Bytewax wiring).
* ``parcels``: what one step hands the next for one destination, and how it crosses processes.
* ``thread_state``: each Bytewax worker thread keeps one Python thread state.
* ``app``: the production dataflow from settings, with the real connectors (``dataflow.py``).
"""
