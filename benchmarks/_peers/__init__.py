"""Workers of benchmarks/peers.py: one module per system, one shared measuring harness.

The worker (``python -m _peers.worker JOB.json``, with ``benchmarks/`` on ``PYTHONPATH``) runs in the
product's environment for the vecdb systems and in the peers' environment (``.venv-peers``, which has no
vecdb) for the others, so nothing here imports vecdb at module level except ``_peers.vecdb_systems``.
Data comes in as ``.npy`` files, the job and the result go out as JSON: nothing is pickled.
"""
