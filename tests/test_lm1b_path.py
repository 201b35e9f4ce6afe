"""The paper's job, `bash run.sh lm1b`, reaches its training steps on a local parquet copy laid
out as the hub's parquet export: offline, under torchrun with 2 CPU processes."""

import json
import os
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq

from corpora import toy
from tests.test_cli import ENV, REPO


def test_run_sh_lm1b_trains_on_a_local_parquet_copy(tiny_bert, tmp_path):
    data = tmp_path / "lm1b"
    for split, n in (("train", 300), ("test", 20)):
        folder = data / "plain_text" / split
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"text": toy.sample(n, seed=len(split))}), folder / "0000.parquet")
    out = tmp_path / "run"
    env = {**ENV, "DATASET": str(data), "MODEL": str(tiny_bert), "NGPU": "2", "OUT": str(out),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    overrides = ["--from_scratch", "true", "--max_steps", "2", "--batch_size", "4",
                 "--max_length", "32", "--dev_size", "8", "--eval_steps", "2",
                 "--eval_batch_size", "8", "--warmup_steps", "1", "--device", "cpu",
                 "--fitlog_dir", ""]  # fmt: skip
    result = subprocess.run(["bash", "run.sh", "lm1b", *overrides], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout and "done: 2 steps" in result.stdout
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert any(record.get("step") == 2 and "dev_nats_per_token" in record for record in log)
    assert (out / "last" / "model.safetensors").is_file() and os.path.isdir(out / "best")
