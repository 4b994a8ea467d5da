"""The platform's own MLflow server app (``mlflow server --app-name mlflow-platform``).

MLflow's basic-auth app with the platform's additions installed into its request flow, one
module per concern, each installed by :func:`mlflow_platform_server.app.create_app`:

* :mod:`.ownership` (pure rules) and :mod:`.declaration` (the reloaded declaration file),
  wired in by :mod:`.hooks`: team ownership of experiment and model names (issue 20);
* the server-cost issue's fast authentication path goes beside them as its own module,
  installed from ``create_app`` the same way (issue 18).

Everything not named here is MLflow's basic-auth, unchanged. See docs/team-ownership.md.
"""
