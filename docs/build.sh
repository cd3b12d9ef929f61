#!/usr/bin/env bash
# Build the documentation and run everything in it that can run:
#   1. HTML (docs/_build/html): executes every gallery script in examples/
#      (sphinx-gallery); an example that raises fails the build, and so does
#      any warning about the pages themselves (docs/conf.py).
#   2. doctest: the >>> examples of the guides and of the API docstrings.
# Needs the docs extra: pip install -e ".[docs]".
#
# Usage: bash docs/build.sh [--strict]
#   --strict  also fail on formatting warnings inside the package's docstrings
set -euo pipefail
cd "$(dirname "$0")/.."

strict=()
if [[ "${1:-}" == "--strict" ]]; then
    strict=(-W)
elif [[ $# -gt 0 ]]; then
    echo "usage: bash docs/build.sh [--strict]" >&2
    exit 2
fi

export MPLBACKEND=Agg
start=$SECONDS
python -m sphinx -b html --keep-going "${strict[@]}" -d docs/_build/doctrees docs docs/_build/html
html_s=$((SECONDS - start))

start=$SECONDS
NEUROPLUG_DOCS_DOCTEST=1 python -m sphinx -b doctest -q -d docs/_build/doctrees-doctest docs docs/_build/doctest
doctest_s=$((SECONDS - start))

echo "docs: HTML with the executed gallery in ${html_s} s, doctests in ${doctest_s} s;" \
     "open docs/_build/html/index.html"
