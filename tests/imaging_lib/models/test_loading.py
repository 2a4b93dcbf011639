"""Loading models by URI: package, local path, fsspec URLs, checksums, cache, and hostile specs.

A spec is data that a store writer controls. The attacks here are the ones such a writer
would try: name a callable as the architecture, point the weights at another file (absolute
path, URL, ``..``, symlink), swap the spec while keeping the weights' pin, ship a TorchScript
program, or make a worker load something the driver never verified.
"""

from __future__ import annotations

import http.server
import io
import json
import operator
import pickle
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
from torch import nn

from imaging_lib import models
from imaging_lib.errors import (
    InvalidModelOutput,
    InvalidModelSpec,
    ModelChecksumMismatch,
    ModelError,
    ModelNotFound,
)
from imaging_lib.models import (
    DEMO_MODEL_URI,
    clear_model_cache,
    load_counts,
    load_model,
    load_pinned_model,
    read_spec,
    sha256_hex,
)
from imaging_lib.models.lesion_cnn import LesionCNN

PACKAGE_DIR = Path(models.__file__).parent
HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture()
def model_copy(tmp_path: Path) -> Path:
    """A copy of the shipped demo model's spec and weights in a private folder ``model/``."""
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("demo_lesion_cnn.json", "demo_lesion_cnn.pt"):
        shutil.copy(PACKAGE_DIR / name, folder / name)
    return folder / "demo_lesion_cnn.json"


@pytest.fixture()
def secret_file(tmp_path: Path) -> Path:
    """A file outside the model folder that an attacker would like to probe."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.pt"
    path.write_bytes(b"not the model's: its hash must never be shown")
    return path


def _edit_spec(spec_path: Path, **fields) -> dict:
    spec = {**json.loads(spec_path.read_text()), **fields}
    spec_path.write_text(json.dumps(spec))
    return spec


def _write_spec(folder: Path, name: str, weights: bytes, **fields) -> Path:
    (folder / f"{name}.pt").write_bytes(weights)
    spec = {
        "name": name,
        "format": "torchscript",
        "weights": f"{name}.pt",
        "sha256": sha256_hex(weights),
        "input_size": [32, 32],
        "channels": 3,
        "class_names": ["no_lesion", "lesion"],
        **fields,
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def _torchscript_bytes(module: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def _hashes_in(message: str) -> set[str]:
    return set(HEX64.findall(message))


class ThreeLogits(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))  # 3 channels in, 3 "classes" out


# ------------------------------------------------------------------------- what works
def test_demo_model_loads_with_its_spec():
    model = load_model(DEMO_MODEL_URI)
    weights = (PACKAGE_DIR / "demo_lesion_cnn.pt").read_bytes()
    assert model.weights_sha256 == sha256_hex(weights) == model.spec.sha256
    assert HEX64.fullmatch(model.checksum) and model.checksum != model.weights_sha256
    assert model.model_id == f"demo_lesion_cnn-{model.checksum[:12]}"
    assert not model.module.training
    assert model.spec.input_size == (224, 224) and model.spec.channels == 3
    assert model.spec.class_names == ("no_lesion", "lesion") and model.spec.positive_class == "lesion"
    assert model.spec["preprocessing"]["window"] == "percentile"
    assert sum(p.numel() for p in model.module.parameters()) < 5_000_000


def test_load_model_caches_per_uri():
    before = load_counts().get(DEMO_MODEL_URI, 0)
    first = load_model(DEMO_MODEL_URI)
    second = load_model(DEMO_MODEL_URI)
    assert first is second
    assert load_counts()[DEMO_MODEL_URI] == max(before, 1)


def test_pickled_model_is_its_pin_and_comes_back_from_the_cache():
    model = load_model(DEMO_MODEL_URI)
    data = pickle.dumps(model)
    assert len(data) < 500  # the uri and checksum, not the weights
    assert model.checksum.encode() in data
    assert pickle.loads(data) is model


def test_local_spec_path_and_weights_path_load_the_same_model(model_copy: Path):
    by_spec = load_model(str(model_copy))
    by_weights = load_model(str(model_copy.with_suffix(".pt")))
    assert by_spec.checksum == by_weights.checksum == load_model(DEMO_MODEL_URI).checksum
    assert by_spec is not by_weights  # two URIs, two cache entries
    x = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(by_spec.module(x), by_weights.module(x))


def test_fsspec_urls_load(model_copy: Path):
    file_url = model_copy.as_uri()
    assert file_url.startswith("file://")
    assert load_model(file_url).checksum == load_model(DEMO_MODEL_URI).checksum
    memory = fsspec.filesystem("memory")
    for path in model_copy.parent.iterdir():
        memory.pipe(f"/models/{path.name}", path.read_bytes())
    loaded = load_model("memory://models/demo_lesion_cnn.json")
    assert loaded.checksum == load_model(DEMO_MODEL_URI).checksum
    assert load_counts()["memory://models/demo_lesion_cnn.json"] == 1


def test_weights_in_a_subfolder_and_a_symlink_inside_the_folder_load(model_copy: Path):
    folder = model_copy.parent
    (folder / "v1").mkdir()
    (folder / "demo_lesion_cnn.pt").rename(folder / "v1" / "weights.pt")
    (folder / "current.pt").symlink_to(Path("v1") / "weights.pt")
    _edit_spec(model_copy, weights="v1/weights.pt")
    assert load_model(str(model_copy)).weights_sha256 == load_model(DEMO_MODEL_URI).weights_sha256
    _edit_spec(model_copy, weights="current.pt")
    clear_model_cache()
    assert load_model(str(model_copy)).weights_sha256 == load_model(DEMO_MODEL_URI).weights_sha256


def test_registered_state_dict_architecture_plugs_in(tmp_path: Path):
    buffer = io.BytesIO()
    torch.save(LesionCNN(width=8).state_dict(), buffer)
    spec_path = _write_spec(
        tmp_path,
        "user_cnn",
        buffer.getvalue(),
        format="state_dict",
        architecture="lesion_cnn",
        architecture_params={"width": 8},
        input_size=[64, 64],
    )
    assert isinstance(load_model(str(spec_path)).module, LesionCNN)


# ------------------------------------------------------------------------- bad models
def test_weights_that_differ_from_their_pin_are_refused(model_copy: Path):
    weights = model_copy.with_suffix(".pt")
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelChecksumMismatch, match="do not have the SHA-256 their spec pins") as info:
        load_model(str(model_copy))
    assert info.value.source == str(model_copy)
    assert isinstance(info.value, ModelError)
    # the message names the pin, never the digest of what was read
    assert _hashes_in(str(info.value)) == {load_model(DEMO_MODEL_URI).weights_sha256}


def test_a_caller_checksum_that_does_not_match_is_refused(model_copy: Path):
    with pytest.raises(ModelChecksumMismatch, match="no longer 0{64}"):
        load_model(str(model_copy), "0" * 64)
    with pytest.raises(ModelChecksumMismatch, match="64 hex digits"):
        load_model(str(model_copy), "12bb")


def test_missing_model_is_reported():
    with pytest.raises(ModelNotFound, match="no model named"):
        load_model("package://no_such_model")
    with pytest.raises(ModelNotFound, match="no model spec at"):
        load_model("/nonexistent/folder/model.json")
    with pytest.raises(ModelNotFound):
        load_model("memory://nowhere/model.json")


def test_wrong_number_of_classes_is_refused(tmp_path: Path):
    spec_path = _write_spec(tmp_path, "three_class", _torchscript_bytes(ThreeLogits()))
    with pytest.raises(InvalidModelOutput, match=r"returns \(1, 3\) .* names 2 classes"):
        load_model(str(spec_path), trust_torchscript=True)


def test_weights_that_do_not_fit_the_architecture_are_refused(model_copy: Path):
    _edit_spec(model_copy, architecture_params={"width": 8, "num_classes": 2})
    with pytest.raises(InvalidModelSpec, match="do not fit architecture"):
        load_model(str(model_copy))


def test_spec_parameters_cannot_make_the_loader_allocate_a_huge_model(model_copy: Path):
    """width=1000 would need about 1 GiB of parameters; shapes are checked on the meta device first."""
    _edit_spec(model_copy, architecture_params={"width": 1000, "num_classes": 2})
    probe = f"""
import resource, sys
from imaging_lib.errors import InvalidModelSpec
from imaging_lib.models import load_model
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_model({str(model_copy)!r})
except InvalidModelSpec as exc:
    print("refused", exc.reason[:60])
print("grew_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert "refused the weights do not fit" in result.stdout, result.stdout + result.stderr
    grew_kib = int(re.search(r"grew_kib (\d+)", result.stdout).group(1))
    assert grew_kib < 200 * 1024, result.stdout


def test_spec_with_bad_fields_or_too_large_is_refused(model_copy: Path):
    spec = json.loads(model_copy.read_text())
    del spec["class_names"]
    model_copy.write_text(json.dumps(spec))
    with pytest.raises(InvalidModelSpec, match="lacks class_names"):
        read_spec(str(model_copy))
    model_copy.write_text("{not json")
    with pytest.raises(InvalidModelSpec, match="not valid JSON"):
        read_spec(str(model_copy))
    model_copy.write_text(json.dumps({**spec, "metrics": {"padding": "x" * (2 << 20)}}))
    with pytest.raises(InvalidModelSpec, match="larger than"):
        read_spec(str(model_copy))


def test_demo_model_is_confident_on_nothing_in_particular():
    """A blank image is no lesion: the model is not a constant 'lesion' answer."""
    model = load_model(DEMO_MODEL_URI)
    blank = torch.zeros(1, 3, 224, 224)
    with torch.inference_mode():
        p_blank = torch.softmax(model.module(blank), 1)[0, 1].item()
    assert np.isfinite(p_blank) and p_blank < 0.5


# ------------------------------------------------------------------------- attacks: code from the spec
@pytest.mark.parametrize(
    ("architecture", "params"),
    [
        ("os:system", {"command": "touch {marker}"}),
        ("subprocess:run", {"args": ["touch", "{marker}"]}),
        ("builtins:eval", {"source": "open({marker!r}, 'w')"}),
        ("builtins.exec", {"source": "open({marker!r}, 'w')"}),
        ("imaging_lib.models.lesion_cnn:LesionCNN", {"width": 16}),
    ],
)
def test_an_architecture_naming_a_callable_is_refused_and_never_called(model_copy: Path, architecture, params):
    marker = model_copy.parent / "pwned"
    filled = json.loads(json.dumps(params).replace("{marker}", str(marker)).replace("{marker!r}", repr(str(marker))))
    _edit_spec(model_copy, architecture=architecture, architecture_params=filled)
    with pytest.raises(InvalidModelSpec, match="not a builder name|unknown architecture"):
        load_model(str(model_copy))
    assert not marker.exists()


def test_a_torchscript_archive_is_refused_unless_the_caller_trusts_it(tmp_path: Path):
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    # the spec itself asking for trust changes nothing
    spec_path = _write_spec(tmp_path, "tiny_script", _torchscript_bytes(module), trust_torchscript=True)
    with pytest.raises(InvalidModelSpec, match="TorchScript archive, which is a program"):
        load_model(str(spec_path))
    loaded = load_model(str(spec_path), trust_torchscript=True)
    assert loaded.spec.format == "torchscript" and loaded.trust_torchscript
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.module(x), module(x))
    # a cached trusted archive is not handed to a caller who did not trust it
    with pytest.raises(InvalidModelSpec, match="which is a program"):
        load_model(str(spec_path))
    # the trust travels with the pin, for exactly this checksum
    assert pickle.loads(pickle.dumps(loaded)).checksum == loaded.checksum


# ------------------------------------------------------------------------- attacks: weights elsewhere
def test_absolute_weights_paths_are_refused_without_reading_them(model_copy: Path, secret_file: Path):
    for target in (secret_file, Path("/etc/hostname")):
        _edit_spec(model_copy, weights=str(target), sha256=sha256_hex(b"anything"))
        with pytest.raises(InvalidModelSpec, match="inside the spec's folder") as refused:
            load_model(str(model_copy))
        if target.exists():
            assert sha256_hex(target.read_bytes()) not in str(refused.value)
        assert _hashes_in(str(refused.value)) == set()


def test_a_weights_url_is_never_fetched(model_copy: Path):
    requests_seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests_seen.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write((PACKAGE_DIR / "demo_lesion_cnn.pt").read_bytes())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for scheme in ("http", "https"):
            _edit_spec(model_copy, weights=f"{scheme}://127.0.0.1:{server.server_port}/demo_lesion_cnn.pt")
            with pytest.raises(InvalidModelSpec, match="inside the spec's folder"):
                load_model(str(model_copy))
    finally:
        server.shutdown()
        server.server_close()
    assert requests_seen == []


@pytest.mark.parametrize("weights", ["../outside/secret.pt", "sub/../../outside/secret.pt", "./../outside/secret.pt"])
def test_dot_dot_escapes_are_refused(model_copy: Path, secret_file: Path, weights: str):
    (model_copy.parent / "sub").mkdir(exist_ok=True)
    _edit_spec(model_copy, weights=weights, sha256=sha256_hex(secret_file.read_bytes()))
    with pytest.raises(InvalidModelSpec, match="inside the spec's folder") as refused:
        load_model(str(model_copy))
    assert _hashes_in(str(refused.value)) == set()


def test_a_symlink_out_of_the_model_folder_is_refused(model_copy: Path, secret_file: Path):
    folder = model_copy.parent
    (folder / "weights.pt").symlink_to(secret_file)
    (folder / "elsewhere").symlink_to(secret_file.parent, target_is_directory=True)
    for weights in ("weights.pt", "elsewhere/secret.pt"):
        _edit_spec(model_copy, weights=weights, sha256=sha256_hex(secret_file.read_bytes()))
        with pytest.raises(InvalidModelSpec, match="lead out of the model's folder") as refused:
            load_model(str(model_copy))
        assert _hashes_in(str(refused.value)) == set()


# ------------------------------------------------------------------------- attacks: swapped spec
def test_a_swapped_spec_with_the_weights_pin_unchanged_changes_the_model(model_copy: Path):
    """Same weights, same pin: flipping the classes would silently invert every answer."""
    verified = load_model(str(model_copy))
    _edit_spec(model_copy, class_names=["lesion", "no_lesion"], positive_class="lesion")
    clear_model_cache()  # as a fresh worker process would be
    with pytest.raises(ModelChecksumMismatch, match="changed since it was verified") as refused:
        load_pinned_model(str(model_copy), verified.checksum)
    assert _hashes_in(str(refused.value)) == {verified.checksum}
    swapped = load_model(str(model_copy))  # loaded afresh and unpinned, it is another model
    assert swapped.weights_sha256 == verified.weights_sha256
    assert swapped.checksum != verified.checksum and swapped.model_id != verified.model_id


def test_a_pinned_load_needs_a_pin(model_copy: Path):
    for missing in ("", None):
        with pytest.raises(ModelChecksumMismatch, match="pinned by the checksum the driver verified"):
            load_pinned_model(str(model_copy), missing)


def test_workers_load_only_the_verified_pin(local_dask_client, model_copy: Path):
    """On a real LocalCluster: the pin loads; a swapped spec, an unpinned or a wrong pin is refused."""
    uri = str(model_copy)
    verified = load_model(uri)
    loaded = local_dask_client.submit(load_pinned_model, uri, verified.checksum, pure=False)
    assert local_dask_client.submit(operator.attrgetter("model_id"), loaded).result() == verified.model_id
    # a LoadedModel sent as an argument arrives as its pin and is re-verified there
    shipped = local_dask_client.submit(operator.attrgetter("checksum"), verified, pure=False)
    assert shipped.result() == verified.checksum

    for pin in ("", "0" * 64):
        with pytest.raises(ModelChecksumMismatch):
            local_dask_client.submit(load_pinned_model, uri, pin, pure=False).result()

    _edit_spec(model_copy, preprocessing={"window": "fixed", "center": 40, "width": 400, "slice_axis": 2})
    local_dask_client.run(clear_model_cache)  # workers that ran above start afresh, as new ones would
    with pytest.raises(ModelChecksumMismatch, match="changed since it was verified"):
        local_dask_client.submit(load_pinned_model, uri, verified.checksum, pure=False).result()
