"""What the tests share, one module per concept (fixtures and pytest hooks stay in tests/conftest.py):

- ``paths``: ROOT, ../shared (``shared_path``, ``chart_tgz``), ``load_module``, ``skip_or_fail``;
  puts the generated repo's template/scripts on sys.path so ``airflow_gitops`` imports normally;
- ``tools``: the binaries the checks run (kubectl, helm, npm linters, the runtime's Airflow, Pythons);
- ``copying``: copier runs and git: ``commit_all``, ``change_answers``, answer sets
  (``staging_answers``, ``ENGINES``), ``assert_nothing_written``;
- ``make``: the generated repo's own Makefile (``run_make``, ``run_validate``, ``render_dev``,
  ``install_rds_ca``, ``make_update``, ``make_upgrade``) and the environment it runs with;
- ``render``: what a render or a kustomize build produced (``kustomize_build``, ``merged_values``,
  ``rendered_objects``, ``objects``, ``by_kind``, ``workloads``, ...);
- ``secrets``: the ``PASSWORDS`` a user types, ``environ``, the SealedSecrets a cluster receives;
- ``chart_switch``: a sealed community-chart repository and the runbook's move to the official chart;
- ``sync_dags``: running template/scripts/sync_dags.py on real trees, and describing the trees.

The stand-ins for components that cannot run here are in tests/standins/, the runtime harness in
tests/runtime/.
"""
