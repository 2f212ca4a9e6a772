"""Reading and writing adapter / vector / composition directories (PEFT files + ``pvlora.json``).

Every write is atomic (build in a temporary directory beside the target, then rename); an
existing target is refused unless ``overwrite``; weights are read from safetensors only unless
pickle is explicitly allowed; every tensor is checked to be finite before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pvlora import __version__
from pvlora.errors import ArtifactError
from pvlora.fs import MAX_WEIGHT_BYTES, plain_name, read_json, regular_file, sha256_file
from pvlora.lora_math import Factors, from_lora, pad_rank

MANIFEST = "pvlora.json"
ADAPTER_CONFIG = "adapter_config.json"
SAFE_WEIGHTS = "adapter_model.safetensors"
PICKLE_WEIGHTS = "adapter_model.bin"
_PEFT_PREFIX = "base_model.model."
_KEY_RE = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


# ---------------------------------------------------------------- small helpers


def base_module_name(key: str) -> str:
    """A module's name in the base model, from its key in a PEFT state dict."""
    return key[len(_PEFT_PREFIX):] if key.startswith(_PEFT_PREFIX) else key


def weight_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file that decides the math: the weights and ``adapter_config.json`` (its
    ``lora_alpha``, ``r`` and ``target_modules`` scale and place ΔW as much as the weights do)."""
    return {p.name: sha256_file(p) for p in sorted(Path(directory).iterdir())
            if (p.suffix in (".safetensors", ".bin") or p.name == ADAPTER_CONFIG) and p.is_file() and not p.is_symlink()}


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """``pvlora.json`` checked for shape: an object whose ``weights_sha256`` maps plain file names to
    hex digests and whose ``base`` (if any) is an object."""
    path = Path(directory) / MANIFEST
    if not path.exists() and not path.is_symlink():
        return None
    manifest = read_json(path)
    hashes = manifest.get("weights_sha256")
    if hashes is not None and not (isinstance(hashes, dict) and all(
            isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in hashes.values())):
        raise ArtifactError(f"{path}: weights_sha256 must map file names to sha256 hex digests, got {hashes!r:.80}")
    for name in hashes or {}:
        plain_name(Path(directory), name, f"{path} (weights_sha256)")
    if manifest.get("preference") is not None:
        from pvlora.config import NAME_RE

        if not isinstance(manifest["preference"], str) or not NAME_RE.fullmatch(manifest["preference"]):
            raise ArtifactError(f"{path}: preference {manifest['preference']!r:.80} is not a valid preference name "
                                "(letters, digits, '_' or '-')")
    for key in ("base", "metrics", "data"):
        if manifest.get(key) is not None and not isinstance(manifest[key], dict):
            raise ArtifactError(f"{path}: {key} must be an object, got {type(manifest[key]).__name__}")
    return manifest


def write_manifest(directory: Path, manifest: dict[str, Any], command: str | None = None) -> None:
    """Write ``pvlora.json`` with the version, ``command`` (the ``pvlora ...`` line that made it, when
    the caller has one) and the sha256 of every file that changes the math."""
    extra = {"command": command} if command and "command" not in manifest else {}
    manifest = {"pvlora_version": __version__, **manifest, **extra, "weights_sha256": weight_hashes(directory)}
    with atomic_file(Path(directory) / MANIFEST) as fh:  # a rewrite never leaves half a manifest
        fh.write(json.dumps(manifest, indent=2, default=str) + "\n")


CONFIG_HASHED_SINCE = (0, 2)  # manifests hash adapter_config.json from pvlora 0.2 on


def _older_than(version: Any, since: tuple[int, int]) -> bool:
    try:
        return tuple(int(x) for x in str(version).split(".")[:2]) < since
    except ValueError:
        return False


def verify_hashes(directory: Path, manifest: dict[str, Any] | None) -> None:
    """Each file listed in the manifest must hash to what the manifest says, and a manifest that
    hashes anything must cover every file that decides the math (so dropping an entry from
    ``weights_sha256`` does not switch the check off for that file)."""
    if not manifest or "weights_sha256" not in manifest:
        return
    directory = Path(directory)
    listed = manifest["weights_sha256"]
    for name in (ADAPTER_CONFIG, SAFE_WEIGHTS, PICKLE_WEIGHTS):
        if name not in listed and ((directory / name).exists() or (directory / name).is_symlink()):
            if name == ADAPTER_CONFIG and _older_than(manifest.get("pvlora_version"), CONFIG_HASHED_SINCE):
                import warnings

                warnings.warn(f"{directory}: made by pvlora {manifest.get('pvlora_version')}, whose manifests do not "
                              f"hash {ADAPTER_CONFIG}; its config is unchecked (re-extract to cover it)", stacklevel=3)
                continue
            raise ArtifactError(f"{directory / name}: not covered by the sha256 list in {MANIFEST}; the artifact "
                                "was altered (or made by an older pvlora): re-create or re-download it")
    for name, expected in listed.items():
        path = plain_name(directory, name, f"{directory / MANIFEST} (weights_sha256)")
        if not path.exists() and not path.is_symlink():
            raise ArtifactError(f"{path}: listed in {MANIFEST} but missing")
        if sha256_file(path) != expected:
            raise ArtifactError(
                f"{path}: sha256 does not match {MANIFEST}; the file was modified or corrupted. "
                "Re-download or re-create it."
            )


@contextlib.contextmanager
def atomic_dir(target: str | Path, overwrite: bool = False, inputs: tuple = ()) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success it replaces ``target``.

    On any error the temporary directory is removed and ``target`` (if it existed) is untouched. A
    lock file beside ``target`` keeps a second writer out for the whole build (so neither silently
    deletes the other's output); a writer killed between the two renames of a replacement is
    recovered by the next one (the old copy is put back, stale temporary directories removed). An
    ``inputs`` path that ``target`` would replace is refused: the output would destroy its own input."""
    target = Path(target)
    for src in inputs:
        s, t = Path(src).resolve(), target.resolve()
        if s == t or s.is_relative_to(t):
            raise ArtifactError(f"{target} is one of this command's own inputs ({src}); choose another output")
    with _write_lock(target):
        recover(target)
        if (target.exists() or target.is_symlink()) and not overwrite:
            raise ArtifactError(f"{target} already exists; pass --overwrite to replace it")
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _default_mode(tmp, 0o777)  # mkdtemp makes it private (0700); the result is an ordinary directory
        if (target.exists() or target.is_symlink()) and _exchange(tmp, target):
            _remove(tmp)  # now the old copy: the destination was never missing
            return
        old = None
        if target.exists() or target.is_symlink():  # no atomic exchange here: two renames, recoverable
            old = target.parent / f".{target.name}.old-{tmp.name[-8:]}"
            target.rename(old)
        tmp.rename(target)
        if old is not None:
            _remove(old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported.
    Python's os.replace cannot replace a non-empty directory, and two renames leave a moment with none."""
    import ctypes
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def recover(target: Path) -> None:
    """Undo what a killed writer left beside ``target`` (call it holding the write lock): with
    ``target`` gone, its newest ``.old-*`` copy is put back; then stale ``.tmp-*``/``.old-*`` go."""
    target = Path(target)
    olds = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and not (target.exists() or target.is_symlink()):
        olds.pop().rename(target)
    for stale in [*olds, *target.parent.glob(f".{target.name}.tmp-*")]:
        _remove(stale)


@contextlib.contextmanager
def _write_lock(target: Path) -> Iterator[None]:
    """An exclusive lock file ``.NAME.lock`` holding the writer's pid; one left by a dead process is taken over."""
    import os
    import socket

    lock = target.parent / f".{target.name}.lock"
    me = f"{socket.gethostname()} {os.getpid()}"
    def unwritable(exc: OSError) -> ArtifactError:  # read-only, or a parent that is a file
        return ArtifactError(f"{target}: cannot write there ({exc.strerror}); choose a writable location")

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unwritable(exc) from None
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                host, pid = lock.read_text().split()
            except (OSError, ValueError):
                host, pid = "", "0"
            if host == socket.gethostname() and not _alive(int(pid)):
                lock.unlink(missing_ok=True)  # its writer was killed: take over
                continue
            raise ArtifactError(f"{target} is being written by another pvlora process ({host or '?'} pid {pid}); "
                                f"wait for it to finish, or delete {lock} if that process is gone") from None
        except OSError as exc:
            raise unwritable(exc) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        break
    else:
        raise ArtifactError(f"cannot take the write lock {lock}; delete it if no pvlora process is writing {target}")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    import os

    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build_once(target: Path, build) -> Path:
    """A cache entry: ``build(tmp)`` fills a temporary directory beside ``target``, which is then
    renamed into place. A concurrent build that finished first wins (its copy is kept)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        if target.exists():
            shutil.rmtree(tmp)
        else:
            _default_mode(tmp, 0o777)
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _default_mode(path: Path, mode: int) -> None:
    """The permissions an ordinary ``mkdir``/``open`` would have given (``mode`` less the umask)."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    path.chmod(mode & ~umask)


def check_finite(tensors: dict[str, torch.Tensor], file: Path) -> None:
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ArtifactError(f"{file}: tensor {name!r} holds NaN or Inf values; the adapter is corrupt")


MAX_ETA = 1000.0


def check_eta(name: str, eta: Any) -> float:
    try:
        value = float(eta)
    except (TypeError, ValueError):
        raise ArtifactError(f"weight for {name!r} must be a number, got {eta!r}") from None
    if not math.isfinite(value):
        raise ArtifactError(f"weight for {name!r} must be finite, got {eta!r}")
    if abs(value) > MAX_ETA:  # far past where any model degrades; large enough values overflow fp32 factors
        raise ArtifactError(f"weight for {name!r} is {value:g}; |η| must be at most {MAX_ETA:g} "
                            "(useful weights are about -3 to 3)")
    return value


# ---------------------------------------------------------------- reading LoRA adapters


@dataclass
class Adapter:
    """A LoRA adapter read from disk: factors with scales folded in, plus its metadata."""

    path: Path
    config: dict[str, Any]
    factors: Factors
    manifest: dict[str, Any] | None = None

    @property
    def base_fingerprint(self) -> dict[str, Any] | None:
        if self.manifest and self.manifest.get("base"):
            return self.manifest["base"]
        name = self.config.get("base_model_name_or_path")
        return {"name_or_path": name, "revision": self.config.get("revision")} if name else None

    @property
    def name(self) -> str:
        if self.manifest and self.manifest.get("preference"):
            return str(self.manifest["preference"])
        return self.path.name

    def shapes(self) -> dict[str, tuple[int, int]]:
        return {k: v.shape for k, v in self.factors.items()}


def load_weights(directory: Path, allow_pickle: bool = False) -> tuple[dict[str, torch.Tensor], Path]:
    safe, pickled = directory / SAFE_WEIGHTS, directory / PICKLE_WEIGHTS
    if safe.exists() or safe.is_symlink():
        from safetensors.torch import load_file

        regular_file(safe, MAX_WEIGHT_BYTES)

        try:
            return load_file(str(safe)), safe
        except Exception as exc:  # safetensors raises SafetensorError / OSError for damaged files
            raise ArtifactError(f"{safe}: cannot read safetensors file ({exc})") from None
    if pickled.exists() or pickled.is_symlink():
        if not allow_pickle:
            raise ArtifactError(
                f"{pickled}: pickle weights can run arbitrary code when loaded and are refused; "
                "convert to safetensors, or pass --allow-pickle if you trust the file"
            )
        regular_file(pickled, MAX_WEIGHT_BYTES)
        import pickle

        try:  # weights_only: PyTorch's restricted unpickler, which refuses anything but tensors and containers
            tensors = torch.load(str(pickled), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"{pickled}: refused by torch.load(weights_only=True), which loads only tensors "
                                f"({first[:200]}); the file holds other objects or is damaged") from None
        if not isinstance(tensors, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                    for k, v in tensors.items()):
            raise ArtifactError(f"{pickled}: expected a dict of named tensors")
        return tensors, pickled
    raise ArtifactError(f"{directory}: no {SAFE_WEIGHTS} (or {PICKLE_WEIGHTS}) found")


def read_adapter(path: str | Path, allow_pickle: bool = False, verify: bool = True) -> Adapter:
    """Read any PEFT LoRA adapter directory, with or without ``pvlora.json``."""
    from peft.utils.other import get_pattern_key

    directory = Path(path)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: not a directory (expected a PEFT adapter directory)")
    cfg_path = directory / ADAPTER_CONFIG
    if not cfg_path.exists() and not cfg_path.is_symlink():
        raise ArtifactError(f"{directory}: missing {ADAPTER_CONFIG}; is this a PEFT adapter directory?")
    config = read_json(cfg_path)
    if config.get("peft_type", "LORA") != "LORA":
        raise ArtifactError(f"{cfg_path}: peft_type {config.get('peft_type')!r} is not LORA")
    if config.get("use_dora"):
        raise ArtifactError(f"{cfg_path}: DoRA adapters are not linear in their factors; use plain LoRA adapters")
    for key in ("lora_bias", "modules_to_save", "trainable_token_indices"):
        if config.get(key):
            raise ArtifactError(f"{cfg_path}: {key} is set; those trained weights are not part of ΔW = B·A and "
                                "would be lost in a vector. Train plain LoRA")
    check_config_types(config, cfg_path)
    manifest = read_manifest(directory)
    if verify:
        verify_hashes(directory, manifest)
    tensors, file = load_weights(directory, allow_pickle)
    check_finite(tensors, file)
    peft_config = _peft_config(config, cfg_path)

    alpha = config.get("lora_alpha", 8)
    rslora = bool(config.get("use_rslora", False))
    rank_pat, alpha_pat = config.get("rank_pattern") or {}, config.get("alpha_pattern") or {}
    pieces: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        m = _KEY_RE.match(key)
        if not m:
            # A LoRA bias, a modules_to_save copy, a DoRA magnitude, trained embedding rows...: trained
            # weights that are not part of ΔW = B·A. Dropping them would silently change the model.
            raise ArtifactError(
                f"{file}: tensor {key!r} is not a linear LoRA factor (lora_A/lora_B weight); pvlora's vectors "
                "hold ΔW = B·A exactly and would lose it. Train plain LoRA (no lora_bias, modules_to_save, "
                "DoRA or trainable tokens)"
            )
        pieces.setdefault(m["module"], {})[m["ab"]] = t
    factors: Factors = {}
    for module, ab in pieces.items():
        if set(ab) != {"A", "B"}:
            raise ArtifactError(f"{file}: module {module!r} has lora_{'A' if 'A' in ab else 'B'} but not its pair")
        A, B = ab["A"], ab["B"]  # (r, d_in), (d_out, r)
        if A.dim() != 2 or B.dim() != 2 or A.shape[0] != B.shape[1]:
            raise ArtifactError(f"{file}: module {module!r} has mismatched LoRA shapes {tuple(A.shape)}, {tuple(B.shape)}")
        r = A.shape[0]
        target = base_module_name(module)
        if not _adapted_by_peft(peft_config, target):
            # PEFT would silently skip these weights on load while compose would apply them: two models
            raise ArtifactError(f"{file}: module {target!r} has LoRA weights but {ADAPTER_CONFIG}'s target_modules "
                                f"({config.get('target_modules')!r}) does not select it; the config and weights disagree")
        a = alpha_pat.get(get_pattern_key(list(alpha_pat), target), alpha)
        configured_r = rank_pat.get(get_pattern_key(list(rank_pat), target), config.get("r", r))
        if configured_r != r:
            raise ArtifactError(f"{file}: module {module!r} has rank {r} but {ADAPTER_CONFIG} says {configured_r}")
        scale = a / math.sqrt(r) if rslora else a / r
        factors[module] = from_lora(A, B, scale)
    if not factors:
        raise ArtifactError(f"{file}: no LoRA factors (lora_A/lora_B weights) found")
    return Adapter(directory, config, factors, manifest)


def check_config_types(config: dict[str, Any], path: Path) -> None:
    """The fields that scale or place ΔW must have the types PEFT writes (``lora_alpha: "16"`` is refused,
    not multiplied as a string)."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    checks = {
        "r": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "lora_alpha": lambda v: number(v) and v != 0,
        "use_rslora": lambda v: isinstance(v, bool),
        "target_modules": lambda v: v is None or isinstance(v, str) or (
            isinstance(v, list) and all(isinstance(x, str) for x in v)),
        "rank_pattern": lambda v: v is None or (isinstance(v, dict) and all(
            isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v.values())),
        "alpha_pattern": lambda v: v is None or (isinstance(v, dict) and all(number(x) for x in v.values())),
        "layers_to_transform": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)),
    }
    for key, ok in checks.items():
        if key in config and not ok(config[key]):
            raise ArtifactError(f"{path}: {key} has the wrong type or value ({config[key]!r}); "
                                "PEFT writes a non-zero number here (r: a positive integer)")


def _peft_config(config: dict[str, Any], path: Path):
    import dataclasses

    from peft import LoraConfig

    known = {f.name for f in dataclasses.fields(LoraConfig)}
    try:
        return LoraConfig(**{k: v for k, v in config.items() if k in known and k not in ("peft_type", "task_type")})
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: PEFT refuses this LoRA config ({exc})") from None


def _adapted_by_peft(peft_config, module: str) -> bool:
    """Would PEFT put this adapter's LoRA on ``module`` when loading it? (PEFT's own matcher.)"""
    from peft.tuners.tuners_utils import _ExcludedModule, check_target_module_exists

    if peft_config.target_modules is None:
        return True  # PEFT fills in the architecture's defaults; weights decide
    found = check_target_module_exists(peft_config, module)
    return bool(found) and not isinstance(found, _ExcludedModule)


def check_same_base(adapters: list[Adapter]) -> None:
    """Refuse to combine adapters made on different bases (by fingerprint or by shapes)."""
    from pvlora.models import describe_base, same_base

    first = adapters[0]
    for other in adapters[1:]:
        if not same_base(first.base_fingerprint, other.base_fingerprint) and _both_hashed(first, other):
            raise ArtifactError(
                f"{first.path} was made on {describe_base(first.base_fingerprint)} but {other.path} on "
                f"{describe_base(other.base_fingerprint)}; vectors from different bases cannot be combined"
            )
        a, b = first.shapes(), other.shapes()
        for key in set(a) & set(b):
            if a[key] != b[key]:
                raise ArtifactError(
                    f"{first.path} and {other.path} disagree on module {key!r} ({a[key]} vs {b[key]}): "
                    "they were made on different base models"
                )


def _both_hashed(a: Adapter, b: Adapter) -> bool:
    fa, fb = a.base_fingerprint or {}, b.base_fingerprint or {}
    return bool(fa.get("config_sha256") and fb.get("config_sha256"))


# ---------------------------------------------------------------- writing LoRA adapters


def write_factors(
    directory: Path, factors: Factors, base_name: str | None, rank: int | None = None,
    task_type: str | None = "CAUSAL_LM", revision: str | None = None,
) -> int:
    """Save ``factors`` (ΔW = B·A, scale folded) as a plain PEFT LoRA adapter with scaling 1.

    Modules of smaller rank are zero-padded to one uniform rank ``r`` with ``lora_alpha = r``: the
    same ΔW, and one config that PEFT, vLLM and other runtimes all read without rank patterns.
    Returns the rank written."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    r = rank or max(lr.rank for lr in factors.values())
    tensors = {}
    for module, lr in factors.items():
        lr = pad_rank(lr, r)
        key = module if module.startswith(_PEFT_PREFIX) else _PEFT_PREFIX + module
        tensors[f"{key}.lora_A.weight"] = lr.A.to(torch.float32).contiguous()  # (r, d_in)
        tensors[f"{key}.lora_B.weight"] = lr.B.to(torch.float32).contiguous()  # (d_out, r)
    check_finite(tensors, directory / SAFE_WEIGHTS)
    targets = sorted(base_module_name(m) for m in factors)
    config = LoraConfig(
        r=r, lora_alpha=r, target_modules=targets, lora_dropout=0.0, bias="none", task_type=task_type,
        base_model_name_or_path=base_name, revision=revision,
    )
    config.save_pretrained(str(directory))
    save_file(tensors, str(directory / SAFE_WEIGHTS), metadata={"format": "pt"})
    return r


@contextlib.contextmanager
def atomic_file(target: Path, mode: str = "w"):
    """Write ``target`` through a temporary file beside it; replaced only when writing succeeded."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with open(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
        _default_mode(Path(tmp), 0o666)  # mkstemp makes it private (0600)
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
