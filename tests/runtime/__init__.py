"""Runtime harness: the generated release run against real servers on 127.0.0.1.

- ``install``: real Apache Airflow from PyPI (pinned like the official constraints) and the
  Debian servers (PostgreSQL, pgbouncer, redis-server), installed by ``make runtime``;
- ``tls``: a throwaway CA and server certificates;
- ``services``: PostgreSQL (SCRAM, SSL), pgbouncer from the chart's rendered config,
  redis-server with TLS and ``requirepass`` standing in for ElastiCache;
- ``pods``: the environment a rendered pod's container gets (envFrom, env, secretKeyRef);
- ``airflow``: Airflow processes started with that environment, in a mount namespace that
  puts the volumes where the pod has them, as the image's uid.
"""
