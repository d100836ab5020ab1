"""Test support shared by every service: real infrastructure resolution and its pytest plugin.

``v2v_platform.testing.pytest_plugin`` (loaded from the root pytest configuration) provides the
``kafka_bootstrap``, ``postgres_dsn`` and ``postgres_database`` fixtures; the resolution logic
lives in ``v2v_platform.testing.infra``.
"""
