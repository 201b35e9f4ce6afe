"""Shareable checkpoints: every folder holds training_args.json and a model card, written
with the folder, and files get the user's umask (not safetensors' 0600). The card's metadata
names a pipeline only where plain transformers computes this model's network (fill-mask on a
time-agnostic denoiser), and its numbers are the run's."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from transformers import pipeline

from common.errors import UsageError
from models import load_checkpoint
from models.card import CARD, TRAINING_ARGS, model_card
from models.config import DiffusionConfig
from tests.test_cli import run_main


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def train(tiny_bert, toy_txt, out, capsys, *extra) -> None:
    """4 steps of a tiny BERT from scratch on the toy sentences, no fitlog."""
    code, _, err = run_main(
        "main.py", "--model_name_or_path", str(tiny_bert), "--from_scratch", "--dataset",
        str(toy_txt), "--word_freq_lambda", "0", "--batch_size", "8", "--max_length", "24",
        "--dev_size", "16", "--num_steps", "100", "--lr", "2e-3", "--warmup_steps", "5",
        "--eval_steps", "4", "--fitlog_dir", "", "--output_dir", str(out), "--max_steps", "4",
        "--quiet", *extra, capsys=capsys,
    )  # fmt: skip
    assert code == 0, err[-3000:]


def front_matter(card: str) -> list[str]:
    """The YAML lines between the card's two ``---`` lines."""
    assert card.startswith("---\n")
    return card.split("---\n")[1].splitlines()


def run_of(**args) -> dict:
    base = {"model_name_or_path": "minilm-l6", "dataset": "toy", "dev_size": 256.0,
            "lr": 3e-4, "lr_schedule": "constant", "warmup_steps": 20, "seed": 42,
            "max_target_length": 64, "from_scratch": False}  # fmt: skip
    base.update(args)
    return {"args": base, "resolved": {"max_steps": 200, "global_batch": 32}, "step": 200,
            "best_dev_nats_per_token": 1.48881}  # fmt: skip


def test_every_checkpoint_folder_has_card_and_args(tiny_bert, toy_txt, tmp_path, capsys,
                                                   umask_022):  # fmt: skip
    out = tmp_path / "run"
    train(tiny_bert, toy_txt, out, capsys, "--keep_last", "1", "--timestep", "layerwise")
    for name in ("best", "last", "checkpoint-4"):
        folder = out / name
        run = json.loads((folder / TRAINING_ARGS).read_text())
        assert run["args"]["lr"] == 2e-3 and run["args"]["max_steps"] == 4
        assert run["args"]["from_scratch"] is True and run["args"]["timestep"] == "layerwise"
        assert run["resolved"]["max_steps"] == 4 and run["resolved"]["global_batch"] == 8
        assert run["step"] == 4 and run["best_dev_nats_per_token"] > 0
        card = (folder / CARD).read_text()
        meta = front_matter(card)
        assert "inference: false" in meta and not any("pipeline_tag" in m for m in meta)
        assert "Plain `transformers` sees only the masked LM" in card
        assert f"{run['best_dev_nats_per_token']:.4f} nats per token" in card
        assert "on 16 held-out sequences" in card
        assert "| `timestep` | `layerwise` |" in card and "4 of 4 optimizer steps" in card
        assert f"python3 predict.py --checkpoint {name}" in card
        log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
        drawn = next(r for r in log if "dev_samples" in r)  # the one evaluation, step 4
        assert run["samples"]["samples"] == drawn["dev_samples"] and len(drawn["dev_samples"]) == 4
        assert "## Samples\n\n4 samples drawn at step 4 (" in card
        assert all(" ".join(t.split()) in card for t in drawn["dev_samples"])
        for item in folder.iterdir():
            mode = stat.S_IMODE(item.stat().st_mode)
            assert mode == 0o644, (item.name, oct(mode))
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert load_checkpoint(out / "best").config.timestep == "layerwise"
    assert not (out / "best" / "training_state.pt").exists()


def test_fill_mask_pipeline_is_the_denoisers_prediction(tiny_bert, toy_txt, tmp_path, capsys):
    """The metadata's pipeline, run by plain transformers on a time-agnostic folder, gives the
    denoiser's p_θ(x0 | x_t) at the masked position (up to the [M] candidate's share)."""
    out = tmp_path / "run"
    train(tiny_bert, toy_txt, out, capsys)
    folder = out / "best"
    assert "pipeline_tag: fill-mask" in front_matter((folder / CARD).read_text())
    checkpoint = load_checkpoint(folder)
    tokenizer, model = checkpoint.tokenizer, checkpoint.model.eval()
    text = f"the old farmer {tokenizer.mask_token} a red horse ."
    fill = pipeline("fill-mask", model=str(folder), top_k=8)(text)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    masked = ids == tokenizer.mask_token_id
    with torch.no_grad():
        ours = model(ids, torch.zeros(1), masked)[0].exp()
    rows = [r for r in fill if r["token"] != tokenizer.mask_token_id]
    ratios = [r["score"] / ours[r["token"]].item() for r in rows]
    assert len(rows) >= 7 and max(ratios) - min(ratios) < 1e-4 * max(ratios)
    assert [r["token"] for r in rows] == ours.topk(len(rows)).indices.tolist()


def test_card_metadata_and_numbers_are_the_runs():
    card = model_card(DiffusionConfig(word_freq_lambda=0.3, max_length=32), run_of(), "best")
    meta = front_matter(card)
    assert "pipeline_tag: fill-mask" in meta and "license: apache-2.0" in meta
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in meta
    assert "text-generation" not in meta and "OWNER/NAME" not in card
    assert "on 256 held-out sequences" in card and "256.0" not in card
    assert "1.4888 nats per token" in card and "200 of 200 optimizer steps" in card
    assert "max_target_length" not in card and "`task`" not in card  # unconditional
    assert "| `word_freq_lambda` | `0.3` |" in card and "`false`" in card
    assert "predict.py --checkpoint best" in card and "main.py` of the DiffusionBERT" in card

    lm1b = model_card(
        DiffusionConfig(timestep="token"),
        run_of(model_name_or_path="bert-base-uncased", dataset="lm1b", dev_size=0.05),
        "best",
    )
    meta = front_matter(lm1b)
    assert "base_model: bert-base-uncased" in meta and "- billion-word-benchmark/lm1b" in meta
    assert not any("pipeline_tag" in m for m in meta) and "held-out 0.05 of the" in lm1b

    local = model_card(DiffusionConfig(), run_of(model_name_or_path="/data/my-bert",
                                                 from_scratch=True), "best")  # fmt: skip
    meta = front_matter(local)
    assert not any(m.startswith(("license", "base_model")) for m in meta)
    assert "not recorded for `/data/my-bert`" in local

    scratch = model_card(DiffusionConfig(), run_of(from_scratch=True), "best")
    assert not any(m.startswith("base_model") for m in front_matter(scratch))
    assert "trained from scratch" in scratch

    seq = DiffusionConfig(task="toy", max_length=48, max_target_length=16)
    seq2seq = model_card(seq, run_of(task="toy", max_target_length=16, dev_size=128.0), "best")
    assert "| `max_target_length` | `16` |" in seq2seq and "16 target positions" in seq2seq
    assert "first 128 pairs of the valid split" in seq2seq
    assert "predict_downstream_condition.py --checkpoint best --task toy" in seq2seq


def test_the_card_says_how_it_was_trained_its_licences_and_how_to_cite():
    from training.settings import command_line

    command = command_line({"dataset": "wiki-summaries", "lr": 3e-4, "bf16": False})
    assert command == "python3 main.py --dataset wiki-summaries --lr 0.0003 --no-bf16"
    run = {**run_of(dataset="wiki-summaries"), "command": command}
    card = model_card(DiffusionConfig(), run, "best")
    assert f"## How it was trained\n\n```bash\n{command}\n```" in card
    assert "The weights: under apache-2.0, the base model's." in card
    assert "CC BY-SA" in card.split("## Licences")[1]  # the text's terms, beside the weights'
    assert "@article{he2022diffusionbert" in card and "arXiv:2211.15029" in card
    assert "## How it was trained" not in model_card(DiffusionConfig(), run_of(), "best")


def test_test_bounds_go_into_the_card(tiny_bert, toy_txt, tmp_path, capsys, monkeypatch):
    """python3 -m evaluation.card adds a compute_elbo.py record of the folder as a row of the
    card's Test bounds (its numbers, as the record has them) and of training_args.json; the
    same data and bound again replaces the row; another folder's record is refused."""
    out = tmp_path / "run"
    train(tiny_bert, toy_txt, out, capsys)
    folder, record = out / "best", tmp_path / "elbo.json"
    monkeypatch.chdir(tmp_path)  # a relative --checkpoint: the record names it absolutely
    args = ["--checkpoint", "run/best", "--dataset", str(toy_txt), "--split", "train",
            "--max_examples", "12", "--bound", "continuous", "--mc_samples", "2", "--json",
            str(record)]  # fmt: skip
    code, _, err = run_main("compute_elbo", *args, capsys=capsys)
    assert code == 0, err
    before = (folder / CARD).read_text()
    code, _, err = run_main("evaluation.card", str(folder), "--records", str(record),
                            capsys=capsys)  # fmt: skip
    assert code == 0, err
    figures = json.loads(record.read_text())
    given, full = figures["given_length"], figures["full_sequence"]
    card = (folder / CARD).read_text()
    row = (f"| {figures['dataset']}/train | continuous, conditioned, 2 draws | 0 | 12 | "
           f"{given['nats_per_token']:.4f} ± {given['nats_per_token_se']:.4f} | "
           f"{full['nats_per_token']:.4f} ± {full['nats_per_token_se']:.4f} | "
           f"{given['ppl_per_word']:,.2f} |")  # fmt: skip
    assert "## Test bounds" in card and row in card
    assert card.replace(card[card.index("## Test bounds") : card.index("## Samples")], "") == before
    again = run_main("evaluation.card", str(folder), "--records", str(record), capsys=capsys)
    assert again[0] == 0 and len(json.loads((folder / TRAINING_ARGS).read_text())["test"]) == 1
    other_seed = tmp_path / "elbo_seed7.json"
    other_seed.write_text(json.dumps({**figures, "seed": 7}))
    code, _, err = run_main("evaluation.card", str(folder), "--records", str(other_seed),
                            capsys=capsys)  # fmt: skip
    tested = json.loads((folder / TRAINING_ARGS).read_text())["test"]
    assert code == 0 and [row["noise_seed"] for row in tested] == [0, 7], err
    code, _, err = run_main("evaluation.card", str(out / "last"), "--records", str(record),
                            capsys=capsys)  # fmt: skip
    assert code == 2 and "not " in err and "pass the records of this checkpoint" in err
    assert figures["checkpoint"] == str(folder.resolve())  # absolute, whatever the cwd


def test_the_card_keeps_other_seeds_and_sizes_and_explains_relative_records(tmp_path, capsys):
    """Rows of the same data and bound with another noise seed or another number of sentences
    are other measurements: all stay; the same measurement again replaces its row. A record
    naming its checkpoint relatively, read from another folder, is one line saying so."""
    from evaluation.card import check_same_folder, same_measurement, summary

    base = {"dataset": "toy", "split": "test", "bound": "continuous", "mc_samples": 2,
            "noise": {"estimator": "conditioned"}, "given_length": None,
            "full_sequence": {"num_sequences": 8, "nats_per_token": 1.0,
                              "nats_per_token_se": 0.1, "ppl_per_word": 3.0}}  # fmt: skip
    rows = []
    for seed, n in ((1, 8), (2, 8), (1, 16), (1, 8)):
        full = {**base["full_sequence"], "num_sequences": n, "nats_per_token": seed + n / 100}
        rows.append(summary({**base, "seed": seed, "full_sequence": full}))
    assert [r["noise_seed"] for r in rows] == [1, 2, 1, 1]
    assert same_measurement(rows[0], rows[3])
    assert not any(same_measurement(rows[0], r) for r in rows[1:3])
    assert same_measurement({**rows[1], "noise_seed": None}, rows[0])  # a row from before seeds
    named = tmp_path / "run" / "best"
    check_same_folder(tmp_path / "r.json", named, named)
    for relative in ("run/best", "../elsewhere/best"):
        with pytest.raises(UsageError, match=r"relative to the folder compute_elbo\.py ran in"):
            check_same_folder(tmp_path / "r.json", Path(relative), named)
    with pytest.raises(UsageError, match="pass the records of this checkpoint"):
        check_same_folder(tmp_path / "r.json", tmp_path / "other" / "best", named)
