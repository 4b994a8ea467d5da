"""CrossGuard policy pack of the MLflow platform.

``policy.rules`` holds the policies and is safe to import (tests do). ``policy/__main__.py`` only
constructs the ``PolicyPack``, which starts a gRPC server and blocks: never import it.
"""
