"""Bundles from somebody else's machine: FIFOs, links, hostile ZIP names, manifests and COCO files of the
wrong shape. Each answer is one sentence within seconds, and nothing outside the bundle is read."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from pathlib import Path

import pytest

from app.cli import main
from engine.datasets.bundle import BundleError, merge_bundles, verify
from engine.datasets.bundle import formats as fm

# A hang is the failure these tests look for: each must answer within seconds.
pytestmark = pytest.mark.timeout(10, func_only=True)

PNG = b"\x89PNG\r\n\x1a\n a small image"  # never decoded: bundles are checked by content hash


def _coco(shas: list[str], file_name=lambda sha: f"{sha}.png") -> dict:
    return {"images": [{"id": i + 1, "file_name": file_name(s), "width": 1, "height": 1,
                        "time_utc": "2026-01-01T00:00:00Z"} for i, s in enumerate(shas)],
            "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 1, 1], "category_id": 0}],
            "categories": [{"id": 0, "name": "scratch"}]}


def make_bundle(root: Path, station: str = "st-a", manifest=None, coco=None, png: bytes = PNG) -> Path:
    """A small bundle as the exporter writes it: one image, COCO truth, a manifest, SHA256SUMS."""
    sha = hashlib.sha256(png).hexdigest()
    files = {fm.image_name(sha): png,
             fm.COCO_GT: json.dumps(coco if coco is not None else _coco([sha])).encode(),
             fm.MANIFEST: json.dumps(manifest if manifest is not None else {
                 "format": fm.FORMAT_NAME, "format_version": fm.FORMAT_VERSION, "station_id": station,
                 "files": fm.manifest_files(("coco",))}).encode()}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    sums = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(files.items()))
    (root / fm.SUMS).write_text(sums)
    return root


def add_to_sums(root: Path, name: str, digest: str = "0" * 64) -> None:
    with open(root / fm.SUMS, "a") as f:
        f.write(f"{digest}  {name}\n")


def within(seconds: float, fn, *args):
    """``fn(*args)``'s exception (or result), failing the test when it has not answered within ``seconds``.

    It runs on a daemon thread, so that a verify stuck in ``open()`` on a FIFO fails the test instead of hanging it.
    """
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True, name="hostile-verify")
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"no answer within {seconds} s"
    return box.get("error", box.get("result"))


def cli_verify(path: Path, capsys) -> tuple[int, str]:
    rc = main(["bundle", "verify", str(path)])
    err = capsys.readouterr().err
    return rc, err


def test_a_fifo_in_a_folder_bundle_is_refused_at_once(tmp_path, capsys):
    b = make_bundle(tmp_path / "b")
    os.mkfifo(b / "images" / "pipe.png")
    add_to_sums(b, "images/pipe.png")
    e = within(5, verify, b)
    assert isinstance(e, BundleError) and "FIFO" in str(e)
    rc, err = cli_verify(b, capsys)
    assert rc == 2 and err.count("\n") == 1 and "FIFO" in err


def test_a_link_to_dev_zero_is_refused_at_once(tmp_path, capsys):
    b = make_bundle(tmp_path / "b")
    os.symlink("/dev/zero", b / "images" / "zero.png")
    add_to_sums(b, "images/zero.png")
    e = within(5, verify, b)
    assert isinstance(e, BundleError) and "symbolic link" in str(e)
    rc, err = cli_verify(b, capsys)
    assert rc == 2 and err.count("\n") == 1 and "symbolic link" in err


def test_a_link_out_of_the_bundle_is_never_called_intact(tmp_path, capsys):
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of any bundle")
    b = make_bundle(tmp_path / "b")
    os.symlink(outside, b / "notes.txt")
    add_to_sums(b, "notes.txt", hashlib.sha256(outside.read_bytes()).hexdigest())
    with pytest.raises(BundleError, match="symbolic link"):
        verify(b)
    # A linked folder too: images/ pointing at a folder elsewhere.
    b2 = make_bundle(tmp_path / "b2")
    elsewhere = tmp_path / "elsewhere"
    (b2 / "images").rename(elsewhere)
    os.symlink(elsewhere, b2 / "images")
    with pytest.raises(BundleError, match="symbolic link"):
        verify(b2)
    rc, err = cli_verify(b2, capsys)
    assert rc == 2 and "intact" not in capsys.readouterr().out


@pytest.mark.parametrize("name", ["../x", "/abs/x", "images/../../x", "C:/x", "images\\..\\x"])
def test_zip_members_that_point_outside_the_bundle_are_refused(name, tmp_path, capsys):
    b = make_bundle(tmp_path / "b")
    z = tmp_path / "b.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(b.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(b).as_posix())
        zf.writestr(name, b"payload")
    with open(b / fm.SUMS, "a") as f:
        f.write(f"{hashlib.sha256(b'payload').hexdigest()}  {name}\n")
    with pytest.raises(BundleError, match="outside the bundle"):
        verify(z)
    rc, err = cli_verify(z, capsys)
    assert rc == 2 and err.count("\n") == 1 and "outside the bundle" in err


@pytest.mark.parametrize("manifest", [[1, 2, 3], "text", {"format": fm.FORMAT_NAME, "format_version": [1]}])
def test_a_manifest_of_the_wrong_shape_is_a_problem_not_a_traceback(manifest, tmp_path, capsys):
    b = make_bundle(tmp_path / "b", manifest=manifest)
    res = verify(b)
    assert not res.ok and fm.MANIFEST in res.problems[0]
    assert main(["bundle", "verify", str(b)]) == 1
    out, err = capsys.readouterr()
    assert "NOT intact" in out and "Traceback" not in err
    good = make_bundle(tmp_path / "good", station="st-b")
    with pytest.raises(BundleError, match="does not verify"):
        merge_bundles([good, b], tmp_path / "merged", "hq")


@pytest.mark.parametrize("manifest_change", [{"stations": "st-a"}, {"models": [1, 2]}, {"files": [1]},
                                             {"references": [{"frames": 1}]}])
def test_merge_refuses_a_manifest_with_fields_of_the_wrong_shape(manifest_change, tmp_path):
    manifest = {"format": fm.FORMAT_NAME, "format_version": fm.FORMAT_VERSION, "station_id": "st-a",
                "files": fm.manifest_files(("coco",)), **manifest_change}
    if manifest_change.get("files") == [1]:
        manifest["files"] = [1]
    a = make_bundle(tmp_path / "a", manifest=manifest)
    b = make_bundle(tmp_path / "b", station="st-b")
    with pytest.raises(BundleError, match="manifest|nothing was merged"):
        merge_bundles([a, b], tmp_path / "merged", "hq")
    assert not (tmp_path / "merged").exists()


def test_merge_refuses_a_coco_file_name_that_leaves_the_bundle(tmp_path):
    sha = hashlib.sha256(PNG).hexdigest()
    a = make_bundle(tmp_path / "a", coco=_coco([sha], lambda s: f"../../{s}.png"))
    b = make_bundle(tmp_path / "b", station="st-b")
    with pytest.raises(BundleError, match="not one of its own images") as e:
        merge_bundles([a, b], tmp_path / "merged", "hq")
    assert "writ" not in str(e.value)
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize("coco", [[1, 2, 3], {"images": "x", "annotations": [], "categories": []},
                                  {"images": [], "annotations": [], "categories": [{"id": 0, "name": {"a": 1}}]}])
def test_merge_refuses_coco_of_the_wrong_shape(coco, tmp_path):
    a = make_bundle(tmp_path / "a", coco=coco)
    b = make_bundle(tmp_path / "b", station="st-b")
    with pytest.raises(BundleError, match="unexpected shape"):
        merge_bundles([a, b], tmp_path / "merged", "hq")


def test_two_small_bundles_still_merge(tmp_path):
    a = make_bundle(tmp_path / "a")
    b = make_bundle(tmp_path / "b", station="st-b", png=PNG + b"\0")
    res = merge_bundles([a, b], tmp_path / "merged", "hq", formats=("coco",))
    assert res.counts["images"] == 2 and verify(res.path).ok


def test_bundle_merge_on_the_command_line_answers_in_one_sentence(tmp_path, capsys):
    sha = hashlib.sha256(PNG).hexdigest()
    a = make_bundle(tmp_path / "a", coco=_coco([sha], lambda s: f"../{s}.png"))
    b = make_bundle(tmp_path / "b", station="st-b")
    c = make_bundle(tmp_path / "c", manifest=[1, 2, 3])
    for first in (a, c):
        rc = main(["bundle", "merge", str(first), str(b), "--out", str(tmp_path / "merged"),
                   "--data-dir", str(tmp_path / "data")])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err and "nothing was merged" in err
    assert not (tmp_path / "merged").exists()
