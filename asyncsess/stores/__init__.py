"""Session stores: the :class:`~asyncsess.stores.base.Store` protocol and one module per backend.

Backends are imported lazily through :mod:`asyncsess.stores._registry`, so
importing asyncsess imports no database driver.
"""
