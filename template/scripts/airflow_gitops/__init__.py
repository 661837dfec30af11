"""This repository's tooling: facts shared by every script, and `make validate` (validate/)."""
