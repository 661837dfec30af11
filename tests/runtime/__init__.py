"""Runtime harness: the generated release run against real servers on 127.0.0.1.

- ``install``: real Apache Airflow from PyPI (pinned like the official constraints, ``constraints/``)
  and the Debian servers (PostgreSQL, pgbouncer, redis-server), installed by ``make runtime``;
- ``sandbox``: a private network namespace per scenario and the processes started in it;
- ``tls``: a throwaway CA and server certificates for the real endpoint names;
- ``services``: PostgreSQL (SCRAM, SSL) for RDS, redis-server with TLS and ``requirepass`` for
  ElastiCache, pgbouncer from the chart's rendered config;
- ``pgbouncer``: each chart's pgbouncer image stood in for by the harness's pgbouncer build;
- ``rendered``: what a rendered pod's containers get (envFrom, env, secretKeyRef, volumes);
- ``pods``: a rendered workload's containers run the way the kubelet would (``podns``: the
  container's mount and UTS namespaces, its user, its command);
- ``deployment``: one environment of a generated repository deployed into a sandbox and driven
  like a cluster (render, unseal, start workloads, wait on logs);
- ``kubeapi``: a Kubernetes API stand-in for the Kubernetes-flavoured executors;
- ``clusterapi``: a read-only Kubernetes API stand-in serving recorded objects (``fixtures/cluster``)
  to the real kubectl, for ``make preflight``;
- ``keda``: KEDA's postgresql scaler polling the rendered ScaledObject's query;
- ``scenario``: what the runtime stories share (the DAG they trigger, broker failures, trusting
  the harness CA as RDS's).
"""
