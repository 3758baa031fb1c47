"""Test and benchmark support, shared by ``tests/`` and ``bench/`` (never by the service).

The benchmarks drive the same dataflow as the end-to-end tests and need a few of the same helpers
(hostile records, free ports, a recovery store). They live here, in the package, so that
``bench/`` never imports ``tests/``: each helper is written once and both sides import it.

These modules may do I/O (sockets, subprocesses, SQLite); the service's own modules never import
them, and the pure-logic modules must not (``tests/unit/test_layers.py`` checks both).

* ``hostile``: records built to break a decoder.
* ``ports``: free local ports.
* ``recovery``: a Bytewax recovery store, made for a run.
"""
