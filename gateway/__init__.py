"""The Flask application and the processes around it (web, worker, scheduler)."""


def create_app(overrides=None):
    """The application: settings layered defaults → environment → ``overrides``.

    Imported lazily so that the other packages can use gateway.models without importing Flask.
    """
    from .app import create_app as _create_app

    return _create_app(overrides)


__all__ = ["create_app"]
