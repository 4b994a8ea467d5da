"""The platform's own MLflow server app (``mlflow server --app-name mlflow-platform``).

MLflow's basic-auth app with the platform's additions installed into its request flow, one
module per concern, each installed by :func:`mlflow_platform_server.app.create_app`:

* :mod:`.ownership` (pure rules) and :mod:`.declaration` (the reloaded declaration file),
  wired in by :mod:`.hooks`: team ownership of experiment and model names (issue 20);
* :mod:`.fastpath`: basic-auth's per-request lookups (run -> experiment, user, grants) cached,
  its decisions left to MLflow's ``authorize()`` (issue 18).

Everything not named here is MLflow's basic-auth, unchanged. See docs/team-ownership.md.
"""
