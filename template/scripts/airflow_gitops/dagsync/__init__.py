"""Publish a DAG tree atomically onto the shared EFS volume that Airflow reads.

    python sync_dags.py check --source DIR [--ignore-syntax regexp|glob] [--plugins DIR]
    python sync_dags.py publish --source DIR --root /opt/efs/dags [--check] [--verify] [--grace 360] [--stats]
    python sync_dags.py rollback --root /opt/efs/dags
    python sync_dags.py status --root /opt/efs/dags [--json]

Layout under ROOT (Airflow's DAGS_FOLDER is ROOT/current, so the hidden names are invisible to it):
    .slot-a/ .slot-b/        two complete trees used in turn
    .slot-a.manifest.json    per slot: every path with its kind, size, mode and SHA-256 (and "clean")
    current -> .slot-a       relative symlink (agents and pods mount the volume at different paths)
    .lock                    flock()ed by publish/rollback; holds "pid=.. host=.. since=.. command=.."
    .state.json              revision and times per slot; `current` on disk is the truth, this describes it

What is published: every file of SOURCE except `.git`, `__pycache__`, `*.pyc` and this tool's temp names
(`.~sync_dags.*`). `.airflowignore` means "do not parse", never "do not ship": ignored helper packages are
published. A symlink inside SOURCE is published as what it points to (a file or a directory copied),
so the tree has no link that could dangle where the volume is mounted or make Airflow's walk report a
"recursive loop"; a link leaving SOURCE, dangling, or pointing at its own ancestor is refused (exit 1).

Change detection is by content: SOURCE is hashed locally, and each slot's manifest says what the slot
holds, so a publish reads two manifests instead of stat()ing the trees on EFS, where every call is a
network round trip. It writes only the files whose content or mode differ into the idle slot (a changed
file is a new inode: the slots share inodes through hard links), writes the manifest, then swaps
`current` by symlink(tmp) + rename(tmp, current): `ln -sfn` is unlink + symlink, not atomic. The live
tree is never written. Writes run --jobs at a time: EFS serves parallel calls in parallel. Before it
writes into a slot, a publish records the paths it is going to touch in that slot's manifest, so a run
killed at any point is repaired by the next one for the cost of those paths only. `--verify` trusts no
manifest: it scans and hashes both slots on the volume, and repairs a slot that was edited by hand.

`check` (and `publish --check`) stages the tree exactly as it would be published, then compiles the
files Airflow parses there (its .airflowignore rules: per-directory files, `[core] dag_ignore_file_syntax`
regexp or glob, and `[core] dag_discovery_safe_mode`) and, when `airflow` is importable, loads Airflow's
DagBag on that tree with it as DAGS_FOLDER (on sys.path, as in the scheduler) and reports import errors.
Without airflow it says so: import errors are then NOT checked.
Python 3.9+ standard library only: it runs inside the apache/airflow:2.8.4-python3.9 image, from the
checkout (scripts/sync_dags.py needs scripts/airflow_gitops/ next to it: dagsync/ and errors.py).

Modules:
    cli       arguments, --help text, exit codes     commands  publish, rollback, status, check
    source    SOURCE as it will be published         ignore    .airflowignore as Airflow compiles it
    checks    compile and DagBag of the staged tree  tree      Item, Tree and small helpers
    volume    counted calls on the volume, plans     manifest  per-slot manifests, syncing one slot
    slots     `current`, the state, flip, rollback   lock      the publishers' flock
    layout    the names under ROOT
"""
