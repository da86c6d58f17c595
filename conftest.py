"""The template's test fixtures (tests/template_fixtures.py) for its own tests; a generated project has neither file,
only tests/conftest.py."""

pytest_plugins = ["tests.template_fixtures"]
