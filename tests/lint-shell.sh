#!/bin/sh
# Runs shellcheck over every shell script the project ships or tests with:
# tracked files named *.sh, or starting with a sh/bash shebang, or
# carrying a `# shellcheck shell=` directive (the VM guest scripts, which
# busybox sh sources and shellcheck reads as dash). Run by `make lint`.
set -eu
cd "$(dirname "$0")/.."
command -v shellcheck >/dev/null 2>&1 || {
  echo "lint: shellcheck is missing (apt-get install shellcheck)" >&2
  exit 1
}
files=$(git ls-files | while read -r f; do
  [ -f "$f" ] || continue
  case "$f" in
    *.sh) echo "$f" ;;
    *) head -n 3 "$f" | grep -qE '^#!.*/(env )?(ba)?sh( |$)|^# shellcheck shell=' && echo "$f" ;;
  esac
done)
# shellcheck disable=SC2086  # one word per file name (no spaces in the tree)
shellcheck -x -P SCRIPTDIR $files
echo "lint: shellcheck clean ($(echo "$files" | wc -l) scripts)"
