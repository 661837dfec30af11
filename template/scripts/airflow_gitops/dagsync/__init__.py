"""Publish a DAG tree atomically onto the shared EFS volume that Airflow reads.

    python sync_dags.py check --source DIR [--ignore-syntax regexp|glob] [--plugins DIR]
    python sync_dags.py publish --source DIR --root /opt/efs/dags [--check] [--verify] [--stats]
                                [--keep-last 5] [--keep-for 86400] [--grace 360] [--keep ID]...
    python sync_dags.py prune --root /opt/efs/dags [--keep-last 5] [--keep-for 86400] [--grace 360] [--keep ID]...
    python sync_dags.py rollback --root /opt/efs/dags
    python sync_dags.py status --root /opt/efs/dags [--json]

Layout under ROOT (Airflow's DAGS_FOLDER is ROOT/current, so the hidden names are invisible to it):
    releases/<id>/                 a complete tree, never modified once published
    releases/<id>.manifest.json    every path with kind, size, mode and SHA-256; revision, published_at
    releases/.~sync_dags.<id>/     a release being built (a leftover of a killed run: the next run removes it)
    current -> releases/<id>       relative symlink (agents and pods mount the volume at different paths)
    .lock                          flock()ed by publish/prune/rollback; holds "pid=.. host=.. since=.. command=.."
    .state.json                    per release: revision, published_at, live_since, superseded_at; `current`
                                   on disk is the truth, this describes it
The id is the first 16 hex digits of the SHA-256 of the sorted lines `kind mode digest path` of the tree:
the same tree is the same release (a re-publish of it writes nothing; an older one becomes live again).

What is published: every file of SOURCE except `.git`, `__pycache__`, `*.pyc` and this tool's temp names
(`.~sync_dags.*`). `.airflowignore` means "do not parse", never "do not ship": ignored helper packages are
published. A symlink inside SOURCE is published as what it points to (a file or a directory copied),
so the tree has no link that could dangle where the volume is mounted or make Airflow's walk report a
"recursive loop"; a link leaving SOURCE, dangling, or pointing at its own ancestor is refused (exit 1).

A publish hashes SOURCE locally and reads the live release's manifest instead of stat()ing its tree on
EFS, where every call is a network round trip. It builds the new release under a temp name: files
unchanged since the live release are hard-linked to its inodes, the others written, --jobs calls at a
time (EFS serves parallel calls in parallel), through directory fds opened once per directory (no path
walks). Then fsync, rename to releases/<id>, the manifest, and `current` is swapped by symlink(tmp) +
rename(tmp, current) (`ln -sfn` is unlink + symlink, not atomic). Killed at any instant, `current` still
points at a complete release. EFS allows 177 hard links per file: a link it refuses (EMLINK, or EXDEV,
EPERM, ...) is a copy instead, counted in --stats; retention keeps far fewer releases than that.
`--verify` trusts no manifest: it scans and hashes the live release, links nothing that was edited by
hand, and repairs in place a release edited by hand that goes live again (the one modification of a
published tree). A tree of the old two-slot layout (`.slot-a`, `.slot-b`) is read like a release: the
first publish links from the live slot, and the slots are pruned like any superseded tree.

Retention (publish prunes after its flip; `prune` alone): the live release, the last --keep-last,
every release superseded less than --keep-for ago (never less than --grace: Airflow lists the folder
every dag_dir_list_interval), and every --keep ID. A removed release is renamed to a temp name, then
its files are unlinked from its own manifest, --jobs at a time: the cost is its size, whatever is kept.
`rollback` points `current` at the release published before the live one.

`check` (and `publish --check`) stages the tree exactly as it would be published, then compiles the
files Airflow parses there (its .airflowignore rules: per-directory files, `[core] dag_ignore_file_syntax`
regexp or glob, and `[core] dag_discovery_safe_mode`) and, when `airflow` is importable, loads Airflow's
DagBag on that tree with it as DAGS_FOLDER (on sys.path, as in the scheduler) and reports import errors.
Without airflow it says so: import errors are then NOT checked.
Python 3.9+ standard library only: it runs inside the apache/airflow:2.8.4-python3.9 image, from the
checkout (scripts/sync_dags.py needs scripts/airflow_gitops/ next to it: dagsync/ and errors.py).

Modules:
    cli       arguments, --help text, exit codes     commands  publish, prune, rollback, status, check
    source    SOURCE as it will be published         ignore    .airflowignore as Airflow compiles it
    checks    compile and DagBag of the staged tree  tree      Item, Tree, the release id, small helpers
    volume    counted calls, directory fds, removal  manifest  per-release manifests, atomic writes
    build     a new release; repairing a hand edit   releases  `current`, state, flip, retention, rollback
    lock      the publishers' flock                  layout    the names under ROOT, retention defaults
"""
