#!/usr/bin/env bash
# Installs the programs that tests start themselves: MariaDB for the MySQL ML Metadata test
# (tests/test_mysql_metadata.py starts mysqld on a temporary datadir; nothing runs as a service)
# and Chromium for the HTML report test (tests/test_report.py runs it headless).
# Needs root and Debian/Ubuntu apt; skips what is already installed. Without them it warns, and
# the tests that need the program are skipped with the reason.
set -euo pipefail

can_install() {
  command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]
}

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1 \
    || [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ]; then
  echo "MariaDB/MySQL server already installed"
elif ! can_install; then
  echo "warning: cannot install mariadb-server (needs root and apt-get); the MySQL metadata test will be skipped" >&2
else
  echo "Installing mariadb-server (for tests/test_mysql_metadata.py)..."
  apt_install mariadb-server
  # The package may start a system service; the tests use their own server, so stop it.
  if command -v service >/dev/null 2>&1; then service mariadb stop >/dev/null 2>&1 || true; fi
  echo "Installed: $(/usr/sbin/mariadbd --version 2>/dev/null || /usr/sbin/mysqld --version)"
fi

if command -v chromium >/dev/null 2>&1; then
  echo "Chromium already installed"
elif ! can_install; then
  echo "warning: cannot install chromium (needs root and apt-get); the HTML report browser test will be skipped" >&2
else
  echo "Installing chromium (for the HTML report test in tests/test_report.py)..."
  apt_install chromium
  echo "Installed: $(chromium --version 2>/dev/null)"
fi
