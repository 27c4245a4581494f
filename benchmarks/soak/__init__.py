"""``nox -s soak``: app processes under load while servers fail over, restart and drop
connections, and an oracle that checks nothing wrong was accepted and nothing
acknowledged was lost. ``python -m benchmarks.soak --help``; see ``run.py``."""
