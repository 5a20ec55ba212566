#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine or a developer's:
# installs what is missing (Dovecot, PostgreSQL, a virtualenv with the project), then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k outbox -x
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "need root to run: $*" >&2; return 1; fi; }

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_answers() { python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(2); sys.exit(s.connect_ex(("127.0.0.1",5432)))'; }

# 1. Dovecot: the tests start their own private instances from it; openssl makes their
#    self-signed certificates.
missing=()
command -v dovecot >/dev/null || [ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

# 2. PostgreSQL at 127.0.0.1:5432 (trust for local test connections), unless one answers already.
if [ -z "${GATEWAY_TEST_PG_URL:-}" ] && ! pg_answers; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "== installing postgresql"
    apt_install postgresql
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! as_root grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
    as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  fi
  echo "== starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do pg_answers && break; sleep 0.5; done
  pg_answers || { echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
fi

# 3. The project in a virtualenv.
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,demo]'

# 4. Static checks (ruff, mypy, the import contracts in pyproject.toml); the real-world
#    corpus through the pipeline (counts per disposition) when
#    ../shared/corpus is there; then the tests.
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
if [ -d ../shared/corpus ]; then
  echo "== corpus check: ../shared/corpus"
  .venv/bin/python scripts/corpus_check.py ../shared/corpus | grep -v '^    '
fi
exec .venv/bin/python -m pytest "$@"
