"""atheris entry points (executable scripts)."""
