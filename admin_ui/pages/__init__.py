"""The admin UI's pages, one module per resource; each calls the admin API routes module of
the same resource (``pages/users.py`` → ``orchestrator/api/routes/users.py``, ...)."""
