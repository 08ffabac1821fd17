"""The output folder of one run: what it wrote, what it was started with, and whether it finished.

Every training command keeps a manifest, ``run_manifest.json``, in its run folder. It lists, relative
to the folder, each file and folder tree the run registered, and each parent folder it had to create
for them; the command that owns the run; the configuration that must match to resume; and whether the
run finished. Opening a folder then decides:

* missing or empty folder: a new run starts (manifest written, unfinished);
* our unfinished run with the same configuration: it is resumed and everything is kept;
* our unfinished run with another configuration: refused, naming the changed keys, unless
  ``overwrite``; then what the manifest lists is deleted and a new run starts;
* our finished run: refused unless ``overwrite``; then what the manifest lists is deleted and a new
  run starts;
* a manifest of another command, or a non-empty folder without a manifest: always refused.

With ``overwrite`` only what the manifest lists is deleted: files the user put in the folder, and
sibling runs in sub-folders (e.g. ``process_1/`` of another process, which hold their own
manifest), stay. A sub-folder holding a run manifest does not make the folder "foreign" either.
Register a path (`RunDirectory.file`, `RunDirectory.folder`) before writing it: the manifest is
written (atomically) first, so a run killed at any point never leaves an unlisted output behind.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path, PurePath

from training.results import to_builtin, write_json

MANIFEST = "run_manifest.json"
FORMAT = 1
_SHOWN_ENTRIES = 5
_MISSING = object()
_STAGING_MARK = ".creating-"  # a run folder being created: staged under a hidden name


class RunDirectoryError(Exception):
    """A run folder cannot be used as asked; the message names the folder (and keys) and what to do.

    Command-line tools turn it into ``SystemExit``.
    """


class RunDirectory:
    """Open (create, resume or replace) the output folder of one run.

    Args:
        path: the run folder.
        command: name of the command that owns the run (e.g. ``"train-boneage"``); a folder
            holding another command's run is refused.
        config: mapping of plain values (JSON-able; paths and NumPy values are converted) with
            the run's settings.
        overwrite: replace a finished run, or an unfinished one started with other settings,
            deleting only what its manifest lists. An unfinished run with the same settings is
            resumed either way.
        resume_independent: keys of ``config`` that may change between restarts without changing
            what is trained (e.g. ``output_dir``, ``overwrite``, ``verbose``); they are neither
            stored nor compared.

    Attributes:
        path: the run folder (`pathlib.Path`).
        command: the owning command.
        config: the stored configuration (``config`` without ``resume_independent`` keys, as
            plain JSON types).
        resumed: True when an unfinished run with the same configuration was found and kept.

    Raises:
        RunDirectoryError: see the module docstring for when.

    Example:

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "run"
    >>> run = RunDirectory(folder, "train-boneage", {"lr": 0.001, "verbose": 1}, resume_independent={"verbose"})
    >>> run.file("logs/history.csv").write_text("epoch\\n")
    6
    >>> _ = run.folder("tensorboard")
    >>> again = RunDirectory(folder, "train-boneage", {"lr": 0.001, "verbose": 2}, resume_independent={"verbose"})
    >>> again.resumed, again.finished
    (True, False)
    >>> again.finish(epochs=3)
    >>> try:
    ...     RunDirectory(folder, "train-boneage", {"lr": 0.01})
    ... except RunDirectoryError as error:
    ...     print("already holds a finished train-boneage run" in str(error))
    True
    >>> fresh = RunDirectory(folder, "train-boneage", {"lr": 0.01}, overwrite=True)
    >>> fresh.resumed, sorted(entry.name for entry in folder.iterdir())
    (False, ['run_manifest.json'])
    """

    def __init__(self, path, command, config, overwrite=False, resume_independent=()):
        self.path = Path(path)
        self.command = str(command)
        ignored = set(resume_independent)
        self.config = _plain({key: value for key, value in dict(config).items() if key not in ignored})
        self.resumed = False
        self._ignored = ignored
        if not self._open(overwrite):  # another process created the folder meanwhile: look again
            self._open(overwrite)

    def _open(self, overwrite):
        """Resume, replace or create the run; False if the folder appeared while it was being created."""
        ignored = self._ignored
        manifest_path = self.path / MANIFEST
        if self.path.exists() and not self.path.is_dir():
            raise RunDirectoryError(f"{self.path} exists and is not a folder; choose another output folder.")
        blocking = next((parent for parent in self.path.parents if parent.exists() and not parent.is_dir()), None)
        if blocking is not None:
            raise RunDirectoryError(
                f"{self.path} cannot be created: {blocking} is a file; choose another output folder."
            )
        if manifest_path.exists():
            previous = self._read_manifest(manifest_path)
            if previous["command"] != self.command:
                raise RunDirectoryError(
                    f"{self.path} holds a run of {previous['command']!r}, not {self.command!r} "
                    f"({manifest_path}); choose another output folder."
                )
            stored = {key: value for key, value in previous["config"].items() if key not in ignored}
            changed = _changed(stored, self.config)
            if not previous["finished"] and not changed:
                self._manifest = previous
                self.resumed = True
                return True
            if not overwrite:
                if previous["finished"]:
                    raise RunDirectoryError(
                        f"{self.path} already holds a finished {self.command} run ({manifest_path}). "
                        "Choose another output folder or pass overwrite (--overwrite) to replace it."
                    )
                raise RunDirectoryError(
                    f"{self.path} holds an unfinished {self.command} run started with other settings "
                    f"({'; '.join(changed)}). Start it again with the same settings to resume, pass "
                    "overwrite (--overwrite) to replace it, or choose another output folder."
                )
            self._delete_listed(previous)
        elif self.path.exists():
            foreign = sorted(
                entry.name
                for entry in self.path.iterdir()
                if not (entry / MANIFEST).is_file() and not _is_staging(entry)
            )
            if foreign:
                shown = ", ".join(foreign[:_SHOWN_ENTRIES]) + (
                    f", ... ({len(foreign) - _SHOWN_ENTRIES} more)" if len(foreign) > _SHOWN_ENTRIES else ""
                )
                raise RunDirectoryError(
                    f"{self.path} is not empty and holds no {MANIFEST}, so it is not a run of this project "
                    f"(it holds {shown}); it is never replaced, not even with overwrite. "
                    "Choose another output folder."
                )
        self._manifest = {
            "format": FORMAT,
            "command": self.command,
            "config": self.config,
            "finished": False,
            "files": [],
            "folders": [],
            "parent_folders": [],
        }
        if self.path.exists():
            self._save()
            return True
        return self._create_with_manifest()

    def _create_with_manifest(self):
        """Create the run folder with its manifest already inside (staged beside it, then renamed).

        A parent run (process 0 of a multi-process run) opening the parent folder at the same
        moment thus never sees this folder without its manifest. Returns False, creating nothing,
        when another process created a non-empty folder at this path in the meantime (for example
        a worker's ``process_1/`` inside it).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}{_STAGING_MARK}", dir=self.path.parent))
        write_json(staging / MANIFEST, self._manifest)
        try:
            os.rename(staging, self.path)
        except OSError:
            shutil.rmtree(staging)
            return False
        return True

    @property
    def finished(self):
        """True once `finish` was called (for this run or the one found on disk)."""
        return self._manifest["finished"]

    def file(self, relative):
        """Register a file the run writes; call it before writing.

        Missing parent folders are created and listed as created by the run. Registering the same
        path again only returns it.

        Args:
            relative: path inside the run folder (no ``..``, not absolute).

        Returns:
            The file's `pathlib.Path`.

        Raises:
            ValueError: ``relative`` leaves the run folder, names the manifest, or was registered
                as a folder.
            RunDirectoryError: the path exists but was not written by this run.
        """
        return self._register(relative, "files")

    def folder(self, relative):
        """Register a folder whose whole tree belongs to the run (e.g. TensorBoard logs, backups).

        The folder (and missing parents) is created. Registering the same path again only returns it.

        Args:
            relative: path inside the run folder (no ``..``, not absolute).

        Returns:
            The folder's `pathlib.Path`.

        Raises:
            ValueError: ``relative`` leaves the run folder, names the manifest, or was registered
                as a file.
            RunDirectoryError: the path exists but was not created by this run.
        """
        path = self._register(relative, "folders")
        path.mkdir(exist_ok=True)
        return path

    def finish(self, **facts):
        """Mark the run finished; the manifest gets ``finished: true`` and ``facts`` (plain values).

        Args:
            **facts: e.g. the final metrics or the number of epochs, stored under ``"facts"``.
        """
        self._manifest["finished"] = True
        self._manifest["facts"] = _plain(facts)
        self._save()

    # Internals.

    def _register(self, relative, kind):
        key = _relative_key(relative)
        other = "folders" if kind == "files" else "files"
        if key in self._manifest[other]:
            raise ValueError(f"{key} is already registered in {self.path} as one of the run's {other}")
        path = self.path / key
        owned = any(key.startswith(f"{folder}/") for folder in self._manifest["folders"])
        if key in self._manifest[kind] or owned:  # already listed, or inside a tree the run owns
            path.parent.mkdir(parents=True, exist_ok=True)
            return path
        _check_inside(self.path, path)
        if kind == "folders" and key in self._manifest["parent_folders"]:  # the run made it: now owns it all
            self._manifest["parent_folders"].remove(key)
            self._manifest["folders"].append(key)
            self._save()
            return path
        if path.exists() or path.is_symlink():
            raise RunDirectoryError(
                f"{path} already exists and was not written by this run; move it away or choose another output folder."
            )
        created = []
        parent = PurePath(key).parent
        while parent != PurePath(".") and not (self.path / parent).exists():
            created.append(parent.as_posix())
            parent = parent.parent
        self._manifest["parent_folders"].extend(
            folder for folder in reversed(created) if folder not in self._manifest["parent_folders"]
        )
        self._manifest[kind].append(key)
        self._save()  # listed before it exists: a killed run never leaves an unlisted output
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _save(self):
        write_json(self.path / MANIFEST, self._manifest)

    def _read_manifest(self, manifest_path):
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RunDirectoryError(f"{manifest_path} cannot be read as a run manifest: {error}") from None
        problem = None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            problem = f"it is not a format-{FORMAT} run manifest"
        elif not isinstance(manifest.get("command"), str) or not isinstance(manifest.get("config"), dict):
            problem = "it lacks the command or the configuration"
        elif not isinstance(manifest.get("finished"), bool):
            problem = "it lacks the finished flag"
        else:
            for kind in ("files", "folders", "parent_folders"):
                entries = manifest.get(kind)
                if not isinstance(entries, list) or not all(isinstance(entry, str) for entry in entries):
                    problem = f"its {kind!r} is not a list of paths"
                    break
                try:
                    manifest[kind] = [_relative_key(entry) for entry in entries]
                except ValueError as error:
                    problem = str(error)
                    break
        if problem:
            raise RunDirectoryError(
                f"{manifest_path} is damaged ({problem}); nothing was deleted. Remove the folder "
                "yourself or choose another output folder."
            )
        return manifest

    def _delete_listed(self, manifest):
        """Delete what ``manifest`` lists, never following a path out of the run folder."""
        for key in manifest["files"]:
            path = self.path / key
            if _is_inside(self.path, path) and (path.is_symlink() or path.is_file()):
                path.unlink()
        for key in manifest["folders"]:
            path = self.path / key
            if not _is_inside(self.path, path):
                continue
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
        for key in sorted(manifest["parent_folders"], key=lambda key: key.count("/"), reverse=True):
            path = self.path / key
            if _is_inside(self.path, path) and path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
                path.rmdir()


def _is_staging(entry):
    """Whether ``entry`` is a run folder still being created (see `RunDirectory._create_with_manifest`)."""
    return entry.name.startswith(".") and _STAGING_MARK in entry.name


def _relative_key(relative):
    """``relative`` as a normalised POSIX path inside the run folder; ValueError when it leaves it."""
    if not isinstance(relative, (str, os.PathLike)):
        raise ValueError(f"a run path must be a string or path, not {type(relative).__name__}")
    pure = PurePath(relative)
    if pure.is_absolute() or pure.anchor:
        raise ValueError(f"{relative!s} is not a path inside the run folder (it is absolute)")
    parts = [part for part in pure.parts if part != "."]
    if ".." in parts:
        raise ValueError(f"{relative!s} is not a path inside the run folder ('..' is not allowed)")
    if any("\\" in part for part in parts):  # the manifest must mean the same on every system
        raise ValueError(f"{relative!s}: use '/' to separate folders in run paths")
    if not parts:
        raise ValueError(f"{relative!r} names the run folder itself, not a path inside it")
    key = "/".join(parts)
    if key == MANIFEST:
        raise ValueError(f"{MANIFEST} is the run's manifest and cannot be registered")
    return key


def _is_inside(root, path):
    """Whether ``path``'s parent, with links resolved, lies in ``root`` (``path`` itself is never followed)."""
    root = os.path.realpath(root)
    parent = os.path.realpath(Path(path).parent)
    return os.path.commonpath([root, parent]) == root


def _check_inside(root, path):
    if not _is_inside(root, path):
        raise ValueError(f"{path} leads out of the run folder {root} through a link")


def _plain(mapping):
    """``mapping`` as plain JSON types (tuples become lists), so that stored and new values compare equal."""
    return json.loads(json.dumps(to_builtin(mapping), allow_nan=False))


def _changed(stored, current):
    """``"key: old -> new"`` for each key whose value differs (a missing key differs from ``None``)."""
    changes = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key, _MISSING), current.get(key, _MISSING)
        if old != new:
            changes.append(f"{key}: {_short(old)} -> {_short(new)}")
    return changes


def _short(value, limit=60):
    text = "(unset)" if value is _MISSING else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
