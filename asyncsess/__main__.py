"""``python -m asyncsess``: the ``asyncsess`` command line (see :mod:`asyncsess.cli`)."""

from .cli import main

raise SystemExit(main())
