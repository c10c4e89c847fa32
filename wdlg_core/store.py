"""Results store: one JSON + one NPZ file per attack, keyed by a hash of what was attacked and how.

Layout under ``<root>/<profile>/``::

    attacks/<key>.npz     arrays: reconstruction (B, C, H, W) and snapshots, float32 in [0, 1]
    attacks/<key>.json    scalars, curves, config, case, provenance, and the NPZ's sha256
    <name>.json           per-notebook summaries (``write_summary``), checked by ``wdlg run``

The key is the sha256 of the canonical JSON (sorted keys, no spaces) of the full
:class:`~wdlg_core.config.AttackConfig` dict, the :class:`Case` dict and the ``wdlg_core``
version, so changing any of them computes a new result; the device is deliberately not part
of the key (a CPU result and a GPU result of the same case are the same experiment).

Atomicity: each file is written to a hidden temporary file in the same folder and moved into
place with :func:`os.replace`. The NPZ goes first and the JSON last, so a record exists only
once its JSON does; a JSON whose NPZ is missing, truncated or has another checksum is treated
as absent (and recomputed). Leftover temporary files from an interrupted run are never read.
Nothing is pickled: arrays are loaded with ``allow_pickle=False``.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from .config import AttackConfig
from .provenance import package_version, provenance
from .result import AttackResult

FORMAT = 1
#: Environment variable that overrides the default results root (``results``).
RESULTS_ROOT_ENV = "WDLG_RESULTS_ROOT"


@dataclass(frozen=True)
class Case:
    """What is attacked: images of a dataset, fed to a freshly initialised model.

    Attributes:
        dataset: dataset name (``mnist``, ``fashion_mnist``, ``svhn``, ``cifar10``, ``cifar100``).
        indices: positions of the attacked images in ``(split, source)``; one attack of batch
            size B has B indices.
        model: model name for :func:`wdlg_core.models.build_model`.
        model_seed: seed of the model's random initial weights.
        split: dataset split.
        source: the data source asked for (``"auto"`` or a named source).
        num_classes: classes of the model's output layer (None: the dataset's).
        images_sha256: fingerprint of the attacked pixels (see
            :func:`wdlg_core.experiments.images_fingerprint`), so that the same index in
            another source or split is another case.
        defense: the defence applied to the shared gradient before the attack, as
            :meth:`wdlg_core.defenses.Defense.to_dict` (a Defense object or dict is validated
            and normalised); None (no defence) is left out of :meth:`to_dict`, so undefended
            cases keep the keys they had before defences existed.
    """

    dataset: str
    indices: tuple[int, ...]
    model: str = "lenet"
    model_seed: int = 0
    split: str = "test"
    source: str = "auto"
    num_classes: int | None = None
    images_sha256: str | None = None
    defense: dict | None = None

    def __post_init__(self):
        object.__setattr__(self, "indices", tuple(int(i) for i in self.indices))
        if self.defense is not None:  # validated and normalised (sigma=10 and 10.0 are one key)
            from .defenses import defense_from_dict

            object.__setattr__(self, "defense", defense_from_dict(self.defense).to_dict())

    def __hash__(self) -> int:
        return hash(canonical_json(self.to_dict()))

    def to_dict(self) -> dict:
        """JSON-able dict of the case (``defense`` left out when None)."""
        d = asdict(self)
        d["indices"] = list(self.indices)
        if d["defense"] is None:
            del d["defense"]
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Case":
        """The inverse of :meth:`to_dict`."""
        return cls(**{**d, "indices": tuple(d["indices"])})


def _case_dict(case: Case | Mapping) -> dict:
    return case.to_dict() if isinstance(case, Case) else {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(case).items()}


def _config_dict(config) -> dict:
    """A config object (anything with ``to_dict``: AttackConfig, RGAPConfig) or a dict, as a dict."""
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def canonical_json(obj) -> str:
    """JSON with sorted keys and no whitespace: equal objects give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def json_records(df) -> list[dict]:
    """A pandas DataFrame as a list of JSON-able row dicts, missing values (NaN, NA, NaT) as None:
    how the pages write their tables into their results files."""
    return df.astype(object).where(df.notna(), None).to_dict(orient="records")


def record_key(config: AttackConfig | Mapping, case: Case | Mapping, version: str) -> str:
    """sha256 (hex, 64 characters) of the canonical JSON of config, case and version."""
    payload = {"config": _config_dict(config), "case": _case_dict(case), "version": str(version)}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a hidden temporary file and :func:`os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def json_safe(obj):
    """Replace NaN/inf floats (not JSON) by None, recursively; numpy scalars to Python."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    return obj


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN/inf become null). Returns the path."""
    path = Path(path)
    _atomic_write_bytes(path, (json.dumps(json_safe(obj), indent=1, sort_keys=False) + "\n").encode())
    return path


class ResultStore:
    """Attack results on disk under ``<root>/<profile>/``, keyed by config + case + version.

    Args:
        root: results folder; None takes ``$WDLG_RESULTS_ROOT`` or ``"results"``.
        profile: profile name (a subfolder), e.g. ``"quick"`` or ``"paper"``.
        version: ``wdlg_core`` version hashed into keys (default: the installed one).

    Attributes ``computed`` and ``loaded`` count :meth:`get_or_run` misses and hits.
    """

    def __init__(self, root: str | os.PathLike | None = None, profile: str = "quick", version: str | None = None):
        root = root if root is not None else os.environ.get(RESULTS_ROOT_ENV, "results")
        self.root = Path(root)
        self.profile = str(profile)
        self.version = str(version) if version is not None else package_version()
        self.computed = 0
        self.loaded = 0

    def __repr__(self) -> str:
        return f"ResultStore(root={str(self.root)!r}, profile={self.profile!r}, version={self.version!r})"

    @property
    def folder(self) -> Path:
        """``<root>/<profile>``: where notebook summaries go."""
        return self.root / self.profile

    @property
    def attack_folder(self) -> Path:
        """``<root>/<profile>/attacks``: one record per attack (``<key>.json`` and ``<key>.npz``)."""
        return self.folder / "attacks"

    def key(self, config: AttackConfig | Mapping, case: Case | Mapping) -> str:
        """The record key of (config, case) under this store's version."""
        return record_key(config, case, self.version)

    def paths(self, key: str) -> tuple[Path, Path]:
        """(JSON path, NPZ path) of a key."""
        return self.attack_folder / f"{key}.json", self.attack_folder / f"{key}.npz"

    # --- reading ---------------------------------------------------------------------
    def read_record(self, key: str) -> tuple[dict, dict[str, np.ndarray]] | None:
        """The stored (JSON document, arrays) of ``key``; None when absent or incomplete.

        A record whose files exist but do not make a complete record (an interrupted write, a
        truncated or edited file) gives None with a ``RuntimeWarning`` naming the file: the
        caller computes it again and overwrites it.
        """
        jpath, npath = self.paths(key)
        if not jpath.exists() and not npath.exists():
            return None
        problem = self._problem(key, jpath, npath)
        if isinstance(problem, str):
            warnings.warn(f"results store: {jpath} {problem}; the attack is computed again", RuntimeWarning,
                          stacklevel=2)
            return None
        return problem

    @staticmethod
    def _problem(key, jpath, npath):
        """(doc, arrays) of a complete record, or a string saying what is wrong with it."""
        try:
            doc = json.loads(jpath.read_text())
        except FileNotFoundError:
            return "is missing (only its arrays were written: an interrupted write)"
        except (OSError, ValueError) as err:
            return f"cannot be read ({type(err).__name__}: truncated or not JSON)"
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("key") != key:
            return f"is not a {FORMAT} record of key {key[:12]}..."
        missing = [k for k in ("config", "case", "result", "npz_sha256") if k not in doc]
        if missing:
            return f"lacks {', '.join(repr(k) for k in missing)}"
        try:
            blob = npath.read_bytes()
        except OSError:
            return f"has no arrays file {npath.name}"
        if hashlib.sha256(blob).hexdigest() != doc.get("npz_sha256"):
            return f"does not match its arrays file {npath.name} (cut short, or from another write)"
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (OSError, ValueError):
            return f"has an unreadable arrays file {npath.name}"
        return doc, arrays

    def load(self, config: AttackConfig | Mapping, case: Case | Mapping) -> AttackResult | None:
        """The stored result of (config, case), or None if there is no complete record."""
        rec = self.read_record(self.key(config, case))
        if rec is None:
            return None
        doc, arrays = rec
        return AttackResult.from_record(doc["result"], arrays)

    def has(self, key: str) -> bool:
        """Whether ``key`` has a complete record: its JSON reads as this key's record and its
        arrays file matches the JSON's checksum (no warning when not; arrays not decoded)."""
        jpath, npath = self.paths(key)
        try:
            doc = json.loads(jpath.read_text())
            return (isinstance(doc, dict) and doc.get("key") == key and doc.get("format") == FORMAT
                    and hashlib.sha256(npath.read_bytes()).hexdigest() == doc.get("npz_sha256"))
        except (OSError, ValueError):
            return False

    # --- writing ---------------------------------------------------------------------
    def save(self, result: AttackResult, case: Case | Mapping, config: AttackConfig | Mapping | None = None) -> str:
        """Store ``result`` for ``case`` (under ``config``, default ``result.config``).

        The NPZ is written first, the JSON last, each atomically. Provenance is taken from
        ``result.meta["provenance"]`` when the attack recorded it, else computed now (with the
        device from ``result.meta["device"]``, default cpu). Returns the key.
        """
        config = result.config if config is None else config
        key = self.key(config, case)
        jpath, npath = self.paths(key)
        doc, arrays = result.to_record()
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
        blob = buf.getvalue()
        _atomic_write_bytes(npath, blob)
        meta = result.meta or {}
        prov = meta.get("provenance") or provenance(meta.get("device", "cpu"))
        record = {
            "format": FORMAT,
            "key": key,
            "version": self.version,
            "profile": self.profile,
            "config": _config_dict(config),
            "case": _case_dict(case),
            "provenance": prov,
            "npz_sha256": hashlib.sha256(blob).hexdigest(),
            "result": doc,
        }
        atomic_write_json(jpath, record)
        return key

    def get_or_run(self, config: AttackConfig | Mapping, case: Case | Mapping,
                   run_fn: Callable[[], AttackResult]) -> AttackResult:
        """The stored result of (config, case); if absent, ``run_fn()``, saved at once."""
        result = self.load(config, case)
        if result is not None:
            self.loaded += 1
            return result
        result = run_fn()
        self.save(result, case, config=config)
        self.computed += 1
        return result

    # --- listing ---------------------------------------------------------------------
    def keys(self) -> list[str]:
        """Keys of complete-looking records (their JSON exists; temporary files ignored)."""
        if not self.attack_folder.is_dir():
            return []
        return sorted(p.stem for p in self.attack_folder.glob("*.json") if not p.name.startswith("."))

    def iter_records(self) -> Iterator[dict]:
        """Yield each complete record's JSON document (incomplete records are skipped)."""
        for key in self.keys():
            rec = self.read_record(key)
            if rec is not None:
                yield rec[0]

    def to_frame(self):
        """All complete records as a pandas DataFrame, one row per attack: key, the case
        fields, the config fields (prefixed ``cfg_`` where they clash), the result scalars,
        version, device and date."""
        import pandas as pd

        rows = []
        for doc in self.iter_records():
            res = doc["result"]
            row = {"key": doc["key"], **doc["case"]}
            row["indices"] = tuple(row.get("indices", ()))
            for k, v in doc["config"].items():
                row[k if k not in row else f"cfg_{k}"] = tuple(v) if isinstance(v, list) else v
            for k in ("mse", "psnr", "ssim", "success", "label_accuracy", "first_loss",
                      "iterations_to_success", "diverged", "wall_time", "function_evals"):
                row[k] = res.get(k)
            losses = res.get("losses") or [None]
            row["final_loss"] = losses[-1]
            row["version"] = doc["version"]
            row["device"] = doc["provenance"].get("device")
            row["date"] = doc["provenance"].get("date")
            rows.append(row)
        return pd.DataFrame(rows)

    # --- notebook summaries --------------------------------------------------------------
    def summary_path(self, name: str) -> Path:
        """``<root>/<profile>/<name>.json``: a notebook's results file."""
        return self.folder / f"{name}.json"

    def write_summary(self, name: str, payload: Mapping, overrides: Mapping | None = None) -> Path:
        """Write a notebook's numbers to ``<root>/<profile>/<name>.json`` (atomically).

        ``overrides``: the page's parameters that differ from the book's run
        (:func:`wdlg_core.runner.page_overrides`), stored under ``"overrides"`` so that the
        replication summary can say that the numbers come from another setting.
        """
        if overrides is not None:
            payload = {**payload, "overrides": dict(overrides)}
        return atomic_write_json(self.summary_path(name), payload)

    def read_summary(self, name: str) -> dict:
        """Read back :meth:`write_summary`'s file. Raises FileNotFoundError if absent."""
        return json.loads(self.summary_path(name).read_text())
