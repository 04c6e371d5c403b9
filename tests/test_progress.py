"""In a batch run (the study runner) progress goes to stderr as text, never into a notebook's outputs."""
from __future__ import annotations

import importlib

import effnb.utils.progress


def test_batch_progress_is_text_on_stderr(monkeypatch, capsys):
    monkeypatch.setenv(effnb.utils.progress.BATCH_ENV, "1")
    progress = importlib.reload(effnb.utils.progress)
    try:
        assert progress.tqdm is progress.BatchTqdm
        for _ in progress.tqdm(range(3), desc="epoch 1/1"):
            pass
        progress.tqdm.write("epoch=1 train_loss=0.69")
        out, err = capsys.readouterr()
        assert out == "" and "epoch 1/1" in err and "epoch=1 train_loss=0.69" in err
    finally:
        monkeypatch.delenv(effnb.utils.progress.BATCH_ENV)
        importlib.reload(effnb.utils.progress)


def test_interactive_progress_uses_tqdm_auto(monkeypatch):
    from tqdm.auto import tqdm as auto_tqdm

    monkeypatch.delenv(effnb.utils.progress.BATCH_ENV, raising=False)
    assert importlib.reload(effnb.utils.progress).tqdm is auto_tqdm
