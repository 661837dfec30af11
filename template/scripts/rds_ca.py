#!/usr/bin/env python3
"""`make rds-ca ENV=<env>`: fetch AWS's RDS CA bundle for the environment's region.

pgbouncer verifies RDS (serverSSL verify-full) against deploy/overlays/<env>/rds-ca-bundle.pem.
The bundle is public (https://truststore.pki.rds.amazonaws.com): this downloads the regional one
over verified HTTPS, checks it holds certificates, and replaces the file atomically.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request
from pathlib import Path

import yaml

URL = "https://truststore.pki.rds.amazonaws.com/{region}/{region}-bundle.pem"
PEM_BEGIN = "-----BEGIN CERTIFICATE-----"


def region_of(repo: Path, env: str) -> str:
    for path in sorted(repo.glob(".copier-answers*.yml")):
        answers = yaml.safe_load(path.read_text()) or {}
        if answers.get("environment") == env:
            return str(answers["aws_region"])
    raise SystemExit(f"rds-ca: no answers file records environment {env!r}")


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    if text.count(PEM_BEGIN) < 1:
        raise SystemExit(f"rds-ca: {url} returned no certificate")
    from cryptography import x509  # the tools venv has it (make seal)

    x509.load_pem_x509_certificates(text.encode())  # every block must parse
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    parser.add_argument("--url", help="bundle URL (default: AWS's regional bundle)")
    args = parser.parse_args(argv)
    target = args.repo / "deploy" / "overlays" / args.env / "rds-ca-bundle.pem"
    if not target.parent.is_dir():
        raise SystemExit(f"rds-ca: no environment {args.env!r} ({target.parent} does not exist)")
    url = args.url or URL.format(region=region_of(args.repo, args.env))
    try:
        text = fetch(url)
    except OSError as exc:
        raise SystemExit(f"rds-ca: cannot download {url}: {exc} (offline? save the file yourself)") from None
    tmp = target.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
    print(f"rds-ca: wrote {target} ({text.count(PEM_BEGIN)} certificates from {url}); commit it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
