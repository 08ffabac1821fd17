"""A run folder deletes only what its manifest lists, resumes only unchanged settings, never touches foreign folders."""

import json
import os
import shutil
from pathlib import Path

import pytest

from training.run_directory import MANIFEST, RunDirectory, RunDirectoryError

COMMAND = "train-boneage"
CONFIG = {"lr": 0.001, "batch_size": 8, "backbone": "resnet50", "output_dir": "runs/a", "verbose": 1}
INDEPENDENT = ("output_dir", "overwrite", "verbose")
POSIX_ONLY = pytest.mark.skipif(os.name == "nt", reason="on Windows a backslash separates folders")


def open_run(folder, config=CONFIG, overwrite=False, command=COMMAND):
    return RunDirectory(folder, command, config, overwrite=overwrite, resume_independent=INDEPENDENT)


def tree(folder):
    """Every file and folder under ``folder``, relative, folders with a trailing slash."""
    folder = Path(folder)
    return {path.relative_to(folder).as_posix() + ("/" if path.is_dir() else "") for path in folder.rglob("*")}


def manifest(folder):
    return json.loads((Path(folder) / MANIFEST).read_text())


def write_outputs(run):
    """What a training run writes: files at the top and in created parents, and owned trees."""
    run.file("best.keras").write_text("model")
    run.file("plots/curves.png").write_text("png")
    run.file("phase1/weights/final.weights.h5").write_text("weights")
    (run.folder("tensorboard/phase1") / "events.out").write_text("events")
    (run.folder("backup") / "chief" / "ckpt").parent.mkdir()
    (run.path / "backup" / "chief" / "ckpt").write_text("ckpt")


OUTPUTS = {
    MANIFEST,
    "best.keras",
    "plots/",
    "plots/curves.png",
    "phase1/",
    "phase1/weights/",
    "phase1/weights/final.weights.h5",
    "tensorboard/",
    "tensorboard/phase1/",
    "tensorboard/phase1/events.out",
    "backup/",
    "backup/chief/",
    "backup/chief/ckpt",
}


def add_user_files(folder):
    """A file of the user's, a sibling process's run folder, and a user file in a run-made folder."""
    (folder / "notes.txt").write_text("mine")
    (folder / "plots" / "my_sketch.png").write_text("mine too")
    sibling = open_run(folder / "process_1")
    sibling.file("checkpoint.keras").write_text("process 1")
    return {
        "notes.txt",
        "plots/",
        "plots/my_sketch.png",
        "process_1/",
        f"process_1/{MANIFEST}",
        "process_1/checkpoint.keras",
    }


def test_a_missing_folder_is_created_with_an_unfinished_manifest(tmp_path):
    folder = tmp_path / "deep" / "run"
    run = open_run(folder)
    assert run.path == folder and not run.resumed and not run.finished
    assert tree(folder) == {MANIFEST}
    assert manifest(folder) == {
        "format": 1,
        "command": COMMAND,
        "config": {"lr": 0.001, "batch_size": 8, "backbone": "resnet50"},
        "finished": False,
        "files": [],
        "folders": [],
        "parent_folders": [],
    }


def test_an_empty_folder_is_used(tmp_path):
    run = open_run(tmp_path)
    assert not run.resumed
    assert tree(tmp_path) == {MANIFEST}


def test_the_manifest_lists_every_registration_and_stays_valid_json(tmp_path):
    run = open_run(tmp_path)
    steps = [
        (lambda: run.file("best.keras"), {"files": ["best.keras"], "folders": [], "parent_folders": []}),
        (
            lambda: run.file("plots/a/curves.png"),
            {"files": ["best.keras", "plots/a/curves.png"], "folders": [], "parent_folders": ["plots", "plots/a"]},
        ),
        (
            lambda: run.folder("tensorboard/phase1"),
            {
                "files": ["best.keras", "plots/a/curves.png"],
                "folders": ["tensorboard/phase1"],
                "parent_folders": ["plots", "plots/a", "tensorboard"],
            },
        ),
        (
            lambda: run.file("best.keras"),  # idempotent
            {
                "files": ["best.keras", "plots/a/curves.png"],
                "folders": ["tensorboard/phase1"],
                "parent_folders": ["plots", "plots/a", "tensorboard"],
            },
        ),
    ]
    for register, expected in steps:
        register()
        written = manifest(tmp_path)  # parses: valid JSON after each registration
        assert {key: written[key] for key in expected} == expected
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporary files
    assert tree(tmp_path) == {MANIFEST, "plots/", "plots/a/", "tensorboard/", "tensorboard/phase1/"}


def test_registration_returns_paths_and_creates_parents(tmp_path):
    run = open_run(tmp_path)
    assert run.file("a/b/c.txt") == tmp_path / "a" / "b" / "c.txt"
    assert (tmp_path / "a" / "b").is_dir() and not (tmp_path / "a" / "b" / "c.txt").exists()
    assert run.folder("logs") == tmp_path / "logs" and (tmp_path / "logs").is_dir()
    assert run.file("logs/inside/x.txt") == tmp_path / "logs" / "inside" / "x.txt"
    assert "logs/inside/x.txt" not in manifest(tmp_path)["files"]  # covered by the owned tree


def test_parents_that_existed_are_not_recorded(tmp_path):
    run = open_run(tmp_path / "run")
    (tmp_path / "run" / "shared").mkdir()  # appears after the run started, made by someone else
    run.file("shared/out.txt")
    assert manifest(tmp_path / "run")["parent_folders"] == []


def test_an_unfinished_run_with_the_same_settings_is_resumed(tmp_path):
    write_outputs(open_run(tmp_path))
    before = manifest(tmp_path)
    again = open_run(tmp_path)
    assert again.resumed and not again.finished
    assert tree(tmp_path) == OUTPUTS
    assert (tmp_path / "best.keras").read_text() == "model"
    assert again.file("best.keras") == tmp_path / "best.keras"  # re-registering on resume is fine
    assert manifest(tmp_path) == before


def test_resume_ignores_resume_independent_keys(tmp_path):
    write_outputs(open_run(tmp_path))
    moved = {**CONFIG, "output_dir": "/elsewhere", "verbose": 2, "overwrite": True}
    again = open_run(tmp_path, moved)
    assert again.resumed
    assert tree(tmp_path) == OUTPUTS


def test_resume_compares_plain_values(tmp_path):
    open_run(tmp_path, {**CONFIG, "sizes": (1, 2), "data": Path("/data")})
    assert open_run(tmp_path, {**CONFIG, "sizes": [1, 2], "data": "/data"}).resumed


def test_changed_settings_are_refused_naming_the_keys(tmp_path):
    write_outputs(open_run(tmp_path))
    with pytest.raises(RunDirectoryError) as caught:
        open_run(tmp_path, {**CONFIG, "lr": 0.01, "epochs": 5})
    message = str(caught.value)
    assert str(tmp_path) in message and "unfinished" in message
    assert "lr: 0.001 -> 0.01" in message and "epochs: (unset) -> 5" in message
    assert "batch_size" not in message and "verbose" not in message
    assert tree(tmp_path) == OUTPUTS


def test_changed_settings_with_overwrite_start_fresh_keeping_user_files(tmp_path):
    write_outputs(open_run(tmp_path))
    user = add_user_files(tmp_path)
    changed = {**CONFIG, "lr": 0.01}
    fresh = open_run(tmp_path, changed, overwrite=True)
    assert not fresh.resumed and not fresh.finished
    assert tree(tmp_path) == {MANIFEST} | user
    assert manifest(tmp_path)["config"]["lr"] == 0.01
    assert manifest(tmp_path)["files"] == []
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_finished_run_is_refused_without_overwrite(tmp_path):
    run = open_run(tmp_path)
    write_outputs(run)
    run.finish(epochs=3, test_mae_months=9.5)
    assert run.finished
    written = manifest(tmp_path)
    assert written["finished"] is True and written["facts"] == {"epochs": 3, "test_mae_months": 9.5}
    for config in (CONFIG, {**CONFIG, "lr": 0.5}):
        with pytest.raises(RunDirectoryError, match="already holds a finished train-boneage run"):
            open_run(tmp_path, config)
    assert tree(tmp_path) == OUTPUTS


def test_overwriting_a_finished_run_deletes_only_what_it_wrote(tmp_path):
    run = open_run(tmp_path)
    write_outputs(run)
    run.finish()
    user = add_user_files(tmp_path)
    fresh = open_run(tmp_path, overwrite=True)
    assert not fresh.resumed and not fresh.finished
    assert tree(tmp_path) == {MANIFEST} | user
    assert (tmp_path / "process_1" / "checkpoint.keras").read_text() == "process 1"
    assert manifest(tmp_path)["finished"] is False


def test_the_fresh_run_can_write_the_same_outputs_again(tmp_path):
    run = open_run(tmp_path)
    write_outputs(run)
    run.finish()
    fresh = open_run(tmp_path, overwrite=True)
    write_outputs(fresh)
    assert tree(tmp_path) == OUTPUTS


def test_a_foreign_folder_is_refused_even_with_overwrite(tmp_path):
    for name in ("a.txt", "b.txt", "c.txt", "d.txt", "e.txt", "f.txt", "g.txt"):
        (tmp_path / name).write_text(name)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.png").write_text("x")
    before = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")}
    for overwrite in (False, True):
        with pytest.raises(RunDirectoryError) as caught:
            open_run(tmp_path, overwrite=overwrite)
        message = str(caught.value)
        assert str(tmp_path) in message and "a.txt, b.txt, c.txt, d.txt, data, ... (3 more)" in message
    assert {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")} == before
    assert not (tmp_path / MANIFEST).exists()


def test_a_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(RunDirectoryError, match="not a folder"):
        open_run(tmp_path / "run", overwrite=True)
    with pytest.raises(RunDirectoryError, match=r"run/inner cannot be created: .*run is a file"):
        open_run(tmp_path / "run" / "inner")
    assert (tmp_path / "run").read_text() == "not a folder"


def test_a_folder_holding_only_sibling_runs_is_not_foreign(tmp_path):
    sibling = open_run(tmp_path / "process_1")
    sibling.file("checkpoint.keras").write_text("process 1")
    chief = open_run(tmp_path)
    assert not chief.resumed
    assert tree(tmp_path) == {MANIFEST, "process_1/", f"process_1/{MANIFEST}", "process_1/checkpoint.keras"}


def test_a_new_run_folder_appears_with_its_manifest_and_a_staging_one_is_not_foreign(tmp_path, monkeypatch):
    seen = []
    real_rename = os.rename

    def rename(source, destination):  # what another process sees just before the folder appears
        seen.append((sorted(p.name for p in Path(source).iterdir()), Path(destination).exists()))
        chief = open_run(tmp_path)  # a process-0 run opening the parent folder at that moment
        assert not chief.resumed
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", rename)
    open_run(tmp_path / "process_1")
    assert seen == [([MANIFEST], False)]
    assert tree(tmp_path) == {MANIFEST, "process_1/", f"process_1/{MANIFEST}"}


def test_a_run_folder_created_meanwhile_by_a_worker_is_used(tmp_path, monkeypatch):
    """Process 0 finds no folder; process 1 creates it (with process_1/ inside) before process 0's rename."""
    real_rename = os.rename
    calls = []

    def rename(source, destination):
        if not calls:
            calls.append(destination)
            open_run(Path(destination) / "process_1")  # uses the real rename: the folder now exists
            return real_rename(source, destination)  # fails: the folder is not empty
        return real_rename(source, destination)

    monkeypatch.setattr(os, "rename", rename)
    chief = open_run(tmp_path / "run")
    assert not chief.resumed and manifest(tmp_path / "run")["command"] == COMMAND
    assert tree(tmp_path) == {"run/", f"run/{MANIFEST}", "run/process_1/", f"run/process_1/{MANIFEST}"}


def test_another_commands_run_is_refused_even_with_overwrite(tmp_path):
    other = RunDirectory(tmp_path, "tune-boneage", {"trials": 3})
    other.file("tuner.json").write_text("{}")
    other.finish()
    for overwrite in (False, True):
        with pytest.raises(RunDirectoryError, match="tune-boneage"):
            open_run(tmp_path, overwrite=overwrite)
    assert tree(tmp_path) == {MANIFEST, "tuner.json"}


def test_a_damaged_manifest_is_refused_and_nothing_deleted(tmp_path):
    (tmp_path / "best.keras").write_text("model")
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(RunDirectoryError, match="cannot be read"):
        open_run(tmp_path, overwrite=True)
    bad = {
        "format": 1,
        "command": COMMAND,
        "config": {},
        "finished": True,
        "files": ["../outside.txt"],
        "folders": [],
        "parent_folders": [],
    }
    (tmp_path / MANIFEST).write_text(json.dumps(bad))
    with pytest.raises(RunDirectoryError, match="damaged"):
        open_run(tmp_path, overwrite=True)
    assert tree(tmp_path) == {MANIFEST, "best.keras"}


@pytest.mark.parametrize(
    "relative",
    [
        "../escape.txt",
        "a/../../escape.txt",
        "a/../b.txt",
        "/abs/x.txt",
        ".",
        "",
        MANIFEST,
        pytest.param("a\\b.txt", marks=POSIX_ONLY),
    ],
)
def test_paths_outside_the_run_folder_are_rejected(tmp_path, relative):
    run = open_run(tmp_path / "run")
    for register in (run.file, run.folder):
        with pytest.raises(ValueError):
            register(relative)
    assert manifest(tmp_path / "run")["files"] == [] and manifest(tmp_path / "run")["folders"] == []
    assert tree(tmp_path) == {"run/", f"run/{MANIFEST}"}


def test_relative_paths_are_normalised(tmp_path):
    run = open_run(tmp_path)
    assert run.file("./plots/./a.png") == tmp_path / "plots" / "a.png"
    assert run.file(Path("plots") / "a.png") == tmp_path / "plots" / "a.png"
    assert manifest(tmp_path)["files"] == ["plots/a.png"]


def test_a_path_cannot_be_both_a_file_and_a_folder(tmp_path):
    run = open_run(tmp_path)
    run.file("out")
    with pytest.raises(ValueError, match="already registered"):
        run.folder("out")


def test_existing_paths_the_run_did_not_write_are_refused(tmp_path):
    run = open_run(tmp_path)
    run.finish()
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "mine").mkdir()
    fresh = open_run(tmp_path, overwrite=True)
    with pytest.raises(RunDirectoryError, match="not written by this run"):
        fresh.file("notes.txt")
    with pytest.raises(RunDirectoryError, match="not written by this run"):
        fresh.folder("mine")
    assert manifest(tmp_path)["files"] == [] and manifest(tmp_path)["folders"] == []


def test_a_folder_the_run_created_can_become_owned(tmp_path):
    run = open_run(tmp_path)
    run.file("plots/a.png").write_text("a")
    run.folder("plots")
    (tmp_path / "plots" / "b.png").write_text("b")
    assert manifest(tmp_path)["folders"] == ["plots"] and manifest(tmp_path)["parent_folders"] == []
    run.finish()
    open_run(tmp_path, overwrite=True)
    assert tree(tmp_path) == {MANIFEST}


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")
def test_overwrite_never_follows_links_out_of_the_run_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    folder = tmp_path / "run"
    run = open_run(folder)
    run.folder("logs")
    run.file("sub/out.txt").write_text("out")
    run.finish()
    # Someone replaces what the run wrote with links to the outside.
    shutil.rmtree(folder / "logs")
    (folder / "logs").symlink_to(outside, target_is_directory=True)
    shutil.rmtree(folder / "sub")
    (folder / "sub").symlink_to(outside, target_is_directory=True)
    (outside / "out.txt").write_text("also outside")
    open_run(folder, overwrite=True)
    assert tree(outside) == {"precious.txt", "out.txt"}
    assert tree(folder) == {MANIFEST, "sub/"}  # the link of a created parent is left alone
    with pytest.raises(ValueError, match="out of the run folder"):
        open_run(folder, overwrite=True).file("sub/new.txt")
