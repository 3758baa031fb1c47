"""The operator and developer tools around the dataflow; the dataflow never imports them.

* ``cli``: ``python -m walkthroughs`` (topics, generate, backfill, report, summary, erase, doctor).
* ``cli_dlq``: ``python -m walkthroughs dlq inspect|redrive``.
* ``cli_support``: what the commands share: settings, console, one-line errors.
* ``dead_letters``: dead letters read back: reasons, summaries, the redrive plan.
* ``topics``: topic creation, producing with acks, reading back (CLI, tests, benches).
* ``traffic``: realistic sample traffic, deterministic by seed.
"""
