"""The rendering layer: every configuration value of the platform, computed once.

Pure, typed functions with no Pulumi import. The Pulumi components (cloud target) and
the local platform (``localplatform``) both consume these renderings, so what we prove
locally is exactly what we deploy.
"""
