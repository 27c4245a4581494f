"""HTTP integrations: :mod:`asyncsess.integrations.starlette` (Starlette and FastAPI) and
:mod:`asyncsess.integrations.aiohttp`. Each imports its framework, so import the one you use.
"""
