# Sourced by .ci/test and .ci/demo: creates or reuses ./.venv and installs what is needed.
# Torch is pinned to the 2.13.0 CPU build first, so that no range ever pulls CUDA wheels.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
python_bin="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python_bin" -m venv "$venv"
fi
py="$venv/bin/python"
pip_quiet=(-q --disable-pip-version-check)
if ! "$py" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
  echo "[setup] installing torch==2.13.0 (CPU build)"
  "$py" -m pip install "${pip_quiet[@]}" "torch==2.13.0"
fi
extras="${AWARE3D_EXTRAS:-train,test,docs,lint,view,export}"
stamp="$venv/.aware3d-install-stamp"
want="$(cat pyproject.toml | sha256sum | cut -c1-16)-$extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing aware3d[$extras] in editable mode"
  "$py" -m pip install "${pip_quiet[@]}" -e ".[$extras]"
  # torch-fidelity (the standard FID Inception) declares torchvision, which has no CPU build for
  # this torch; its Inception extractor does not need it, so it is installed without dependencies.
  echo "[setup] installing torch-fidelity==0.4.0 without dependencies"
  "$py" -m pip install "${pip_quiet[@]}" --no-deps "torch-fidelity==0.4.0"
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
