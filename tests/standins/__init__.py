"""Stand-ins for the components these tests cannot run here, each enforcing the real one's rules
(its module docstring names them and where they come from), each with a test where it refuses what
the real component refuses:

- ``controller``: the sealed-secrets controller's keys, certificate and decryption (pkg/crypto
  HybridDecrypt); a wrong label or a flipped byte fails as the controller fails
  (tests/test_secrets.py::test_tampering_is_detected);
- ``declarative``: a Jenkinsfile's own Groovy run by real Groovy the way Declarative Pipeline
  evaluates its agents and parameters
  (tests/test_jenkinsfile.py::test_the_declarative_stand_in_refuses_what_jenkins_refuses);
- ``netpol``: ingress NetworkPolicy semantics as a CNI enforces them (tests/test_production.py::
  test_the_policy_evaluator_resolves_named_ports, and the flows denied in tests/test_production.py,
  tests/test_official_chart.py, tests/test_metrics.py);
- ``s3_iam``: S3 on 127.0.0.1 authorizing each request with an IAM identity policy
  (tests/test_s3_standin.py: what it does not model, it refuses);
- ``crd_types.mjs``: the Prometheus Operator CRDs' OpenAPI types, run by node
  (tests/test_metrics.py::test_the_monitoring_objects_match_the_operators_crd_types).
"""
