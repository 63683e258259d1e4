#!/usr/bin/env bash
# Installs the servers that tests start themselves: MariaDB for the MySQL ML Metadata test
# (tests/test_mysql_metadata.py starts mysqld on a temporary datadir; nothing runs as a service).
# Needs root and Debian/Ubuntu apt; skips what is already installed.
set -euo pipefail
if command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1 \
    || [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ]; then
  echo "MariaDB/MySQL server already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "warning: cannot install mariadb-server (needs root and apt-get); the MySQL metadata test will be skipped" >&2
  exit 0
fi
echo "Installing mariadb-server (for tests/test_mysql_metadata.py)..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null
# The package may start a system service; the tests use their own server, so stop it.
if command -v service >/dev/null 2>&1; then service mariadb stop >/dev/null 2>&1 || true; fi
echo "Installed: $(/usr/sbin/mariadbd --version 2>/dev/null || /usr/sbin/mysqld --version)"
