#!/usr/bin/env bash
# Integration tests against one end of the tested version range: `.ci/version_matrix.sh floor|latest|newest`.
# Each end has its own venv under ~/.cache/meterline-ci (or $METERLINE_CI_CACHE), rebuilt only when its
# pins (.ci/versions-<end>.txt) change; the tests run from this checkout's src/ (nothing is installed from it).
# `newest`: the same libraries unpinned, upgraded on every run to whatever the registry serves today (a new
# release that breaks meterline fails here, not in a user's app; the pinned ends keep the declared range honest).
set -euo pipefail
cd "$(dirname "$0")/.."
end="${1:?usage: version_matrix.sh floor|latest|newest}"
pins=".ci/versions-${end}.txt"
if [ "$end" = newest ]; then
  pins="$(mktemp)"
  sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' .ci/versions-latest.txt > "$pins"
fi
cache="${METERLINE_CI_CACHE:-$HOME/.cache/meterline-ci}"
venv="$cache/venv-${end}"
python="${PYTHON:-python3}"
if ! cmp -s "$pins" "$venv/.meterline-pins" 2>/dev/null; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$pins" \
    'genai-prices>=0.2.3' 'platformdirs>=3' pytest pytest-asyncio pyyaml
  cp "$pins" "$venv/.meterline-pins"
fi
if [ "$end" = newest ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade -r "$pins"
fi
echo "version matrix ($end): $("$venv/bin/python" - <<'PY'
from importlib.metadata import version
print(", ".join(f"{d} {version(d)}" for d in ("litellm", "openai", "anthropic", "botocore")))
PY
)"
PYTHONPATH="$PWD/src" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_litellm_calls.py tests/test_litellm_streams.py tests/test_litellm_volume.py \
  tests/test_anthropic_*.py tests/test_openai_*.py tests/test_bedrock_*.py \
  tests/test_layering.py tests/test_litellm_over_openai.py tests/test_integration_contract.py
