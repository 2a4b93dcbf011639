"""Benchmark seeded region growing on a 256³ volume and quantification of the Talairach atlas.

Measured side by side in one run:

* ``grow_region`` from a seed inside a 40 mm sphere of a 256³ oblique phantom with
  noise, for each tolerance mode, with and without smoothing (median of repeats);
* ``quantify`` of the grown mask;
* ``quantify_labels`` on papaya's Talairach atlas (every label at once) against a
  per-label loop of numpy boolean masks (the obvious way), as a ratio.

The last line is ``segment_256_s <seconds>``: the median time of one default
``grow_region`` call on the 256³ volume (target: under 1 s on this machine).

Run: ``.venv/bin/python bench/bench_segment.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
from timing import repeat_times

from imaging_lib import sample_data
from imaging_lib.io.nifti import read_nifti
from imaging_lib.phantoms import Ellipsoid, draw_phantom, oblique_affine
from imaging_lib.science.segment import grow_region, quantify, quantify_labels


def median_seconds(function: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    return statistics.median(repeat_times(function, repeats))


def per_label_loop(values: np.ndarray, labels: np.ndarray) -> list[tuple[int, float, float]]:
    """The obvious per-label computation: one boolean mask per label."""
    rows = []
    for label in np.unique(labels):
        if label == 0:
            continue
        inside = values[labels == label]
        rows.append((int(label), float(inside.mean()), float(np.percentile(inside, 50))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    shape = (256, 256, 256)
    affine = oblique_affine(shape, spacing_mm=(0.9, 0.9, 1.0))
    sphere = Ellipsoid.sphere((10.0, -5.0, 8.0), 40.0, 200.0)
    phantom = draw_phantom(shape, affine, [sphere], background=20.0, noise_sigma=8.0)
    volume, seed = phantom.volume, phantom.seed_ijk(0)
    print(f"volume {volume.shape} float32, sphere {sphere.volume_ml:.1f} mL, seed {seed}")

    cases = {
        "std (default)": {},
        "absolute": {"tolerance_mode": "absolute", "tolerance": 90.0},
        "std, 26-connected, 3 iterations": {"connectivity": 26, "iterations": 3},
        "absolute, smoothing 1 mm": {"tolerance_mode": "absolute", "tolerance": 90.0, "smoothing_sigma_mm": 1.0},
    }
    timings = {}
    for name, params in cases.items():
        mask = grow_region(volume, seed, **params)
        error = quantify(volume, mask)["volume_ml"] / sphere.volume_ml - 1
        timings[name] = median_seconds(lambda: grow_region(volume, seed, **params), args.repeats)
        print(f"grow_region {name:34s} {timings[name]:.3f} s   volume error {100 * error:+.2f} %")
    mask = grow_region(volume, seed)
    quantify_seconds = median_seconds(lambda: quantify(volume, mask), args.repeats)
    print(f"quantify (one mask)                            {quantify_seconds:.3f} s")

    labels = read_nifti(sample_data.papaya_nifti("Talairach_labels_1mm.nii.gz"))
    intensity = labels.with_array(np.random.default_rng(0).normal(100.0, 10.0, labels.shape[:3]).astype(np.float32))
    count = int(np.count_nonzero(np.unique(labels.array)))
    vectorised = median_seconds(lambda: quantify_labels(intensity, labels), args.repeats)
    loop = median_seconds(lambda: per_label_loop(intensity.array, labels.array), 1)
    print(f"quantify_labels Talairach ({count} labels, {labels.shape[:3]})  {vectorised:.3f} s")
    print(
        f"per-label numpy loop (mean and median only)    {loop:.3f} s   ratio loop/vectorised {loop / vectorised:.1f}x"
    )
    print(f"segment_256_s {timings['std (default)']:.3f}")


if __name__ == "__main__":
    main()
