"""``make bench`` (``python -m mlflowbench``): what the tracking server costs per unit of work.

The platform as shipped and MLflow as shipped ("stock": ``--app-name basic-auth``, MLflow's own
store, the same TLS, PgBouncer, pools, workers and auth-cache TTL) run side by side and the rounds
alternate between them, so a noisy neighbour on a shared machine slows both alike: compare the
ratios of one run, not absolute figures across runs.

* :mod:`.measure`: CPU of process trees from ``/proc`` (the pod's processes summed, PostgreSQL
  apart, for sizing the database);
* :mod:`.scenarios`: the work, as a typed table, and the request bodies it is sent as;
* :mod:`.load`: load from separate processes over kept-alive HTTPS connections, bodies encoded
  before the clock starts, so the client is not what is measured;
* :mod:`.runner`: the platforms, identities and interleaved rounds;
* :mod:`.report`: JSON, Markdown and a PNG, the headline figures and the issue's targets;
* :mod:`.cli`: the command line;
* :mod:`.jobs` (``make bench-jobs``): paced and burst training jobs, as users live them.
"""
