"""``python -m benchmarks.soak``: see :mod:`benchmarks.soak.run`."""

from .run import main

main()
