"""Score compositions: one model load with every vector as its own adapter, re-weighted per point."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from pvlora.config import ExperimentConfig
from pvlora.core.errors import ConfigError
from pvlora.core.memory import release_memory
from pvlora.evaluation.prompt_sets import PromptSet, prompt_set
from pvlora.evaluation.scorers import EvalBatch, EvalContext, get_scorer
from pvlora.artifacts.manifest import Manifest
from pvlora.core import registry as builtins
from pvlora.core.judges import pattern_judge
from pvlora.core.seeded import heldout_sample
from pvlora.data import load_preference_data
from pvlora.evaluation.test_log import append_test_run, sha256_file, sha256_json
from pvlora.steering.scales import get_weights, set_weights

RELEASE_AFTER_BYTES = 64 << 20  # a point that grew the resident set by less than this keeps its pages for the next


def find_vectors(directory: str | Path) -> dict[str, Path]:
    """{preference: vector dir} for every vector directory directly under ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no vectors directory; run `pvlora extract` (or `pvlora demo`) first, "
                          "or pass vectors=DIR")
    out: dict[str, Path] = {}
    for d in sorted(directory.iterdir()):
        if d.is_dir() and (d / "pvlora.json").exists():
            meta = Manifest.read(d)  # names the file when it is not valid JSON
            if meta.kind == "vector" and meta.method == "difference":
                name = meta.preference or d.name
                if name in out:  # which one is meant is not ours to guess
                    raise ConfigError(f"{directory}: two vector directories for preference {name!r}: {out[name]} and "
                                      f"{d}; keep one (move the other out), or pass vectors=DIR")
                out[name] = d
    if not out:
        raise ConfigError(f"{directory}: holds no preference-vector directory (pvlora.json with kind 'vector')")
    return out


def load_prompts(cfg: ExperimentConfig, split: str, test_set: bool = False):
    """(prompts, kinds, reference answers, styles) for the configured evaluation set and split: a
    built-in set (``toy``, ``smollm2``: see :mod:`pvlora.core.registry`), a public benchmark
    (``harmbench``, ``advbench``) or a .jsonl of {prompt, kind, style?, reference?} rows split in
    half by a seeded shuffle (:func:`pvlora.evaluation.prompt_sets.prompt_set`)."""
    return _unpack(prompt_set(cfg.eval.prompts, split, test_set=test_set).rows)


def _unpack(rows: list[dict[str, Any]]):
    prompts = [r["prompt"] if isinstance(r["prompt"], list) else [{"role": "user", "content": r["prompt"]}] for r in rows]
    refs = [{"prompt": p, "completion": [{"role": "assistant", "content": r["reference"]}]}
            for p, r in zip(prompts, rows) if r.get("reference")]
    return prompts, [r.get("kind") for r in rows], refs, [r.get("style") for r in rows]


class Evaluator:
    """Loads the base once with all vectors attached; :meth:`score` sets η and runs every scorer.

    Every score of a sealed prompt *file* (a public benchmark, a file with rows marked
    ``"test": true``, one declared with ``test_set=True``, or the test half of a file) appends a
    line to the test log (:mod:`pvlora.evaluation.test_log`), whoever calls :meth:`score`. The
    built-in worlds' test splits are logged by their studies (the SmolLM2 study under its
    pre-registration); ``log_builtin_test=True`` (the ``eval``, ``sweep`` and ``tune`` commands)
    logs those looks here too. ``command`` is recorded with each line.
    """

    def __init__(self, cfg: ExperimentConfig, vectors: dict[str, Path], split: str = "all", *,
                 test_set: bool = False, log_builtin_test: bool = False, command: str | None = None):
        from pvlora.steering.load import load_composed

        self.cfg = cfg
        self.vectors = dict(vectors)
        self.test_set, self.log_builtin_test, self.command = test_set, log_builtin_test, command
        prompt_set(cfg.eval.prompts, split, test_set=test_set)  # a bad prompt file fails before the model loads
        self.scorers = [get_scorer(s) for s in cfg.eval.scorers]
        self.model, self.tok = load_composed(cfg.model.name_or_path, {str(p): 0.0 for p in vectors.values()},
                                             revision=cfg.model.revision)

        self.names = list(get_weights(self.model))  # adapter names = preference names

        # a built-in world with exact ground truth judges with it; real output, with the patterns
        own = builtins.has("judge", cfg.eval.prompts)
        self.context = EvalContext(
            refusal_patterns=list(cfg.eval.refusal_patterns or []), reward_model=cfg.eval.reward_model,
            cost_model=cfg.eval.cost_model,
            judge=builtins.get("judge", cfg.eval.prompts)() if own else pattern_judge(cfg.eval.refusal_patterns),
        )
        if any(s.name == "preference_accuracy" for s in self.scorers):
            # the same cap (train.heldout_max_pairs) and the same seeded pairs as training scored
            self.context.heldout_pairs = {
                p.name: heldout_sample(load_preference_data(p, "positive", cfg.seed).heldout, cfg.train.heldout_max_pairs,
                                       cfg.seed) for p in cfg.preferences
                if p.name in vectors}
        # {(split, η per vector): (scores, responses)}: every point scored so far
        self.scored: dict[tuple, tuple[dict[str, float], list[str]]] = {}
        self.set_split(split)

    def set_split(self, split: str) -> None:
        self.prompt_set: PromptSet = prompt_set(self.cfg.eval.prompts, split, test_set=self.test_set)
        self.split = split
        self.prompts, self.kinds, self.context.reference_answers, self.context.styles = _unpack(self.prompt_set.rows)

    @property
    def sealed(self) -> str | None:
        """Why scoring the current split is a look at a test set (None: it is not)."""
        return self.prompt_set.sealed

    def _logs_test_look(self) -> bool:
        ps = self.prompt_set
        return ps.sealed is not None and (ps.path is not None or self.log_builtin_test)

    def _log_test_look(self, eta: dict[str, float], scores: dict[str, float]) -> None:
        """One line of the test log for one scored point of a sealed set."""
        ps, package = self.prompt_set, Path(__file__).resolve().parents[1]
        cfg = self.cfg.to_dict()
        cfg.get("output", {}).pop("dir", None)  # where it writes changes no figure
        vectors = {n: sha256_json({f.name: sha256_file(f) for f in sorted(Path(p).iterdir()) if f.is_file()})
                   for n, p in self.vectors.items()}
        append_test_run(
            study="pvlora.evaluation", split="test",  # a public or marked set scored whole is a test look too
            figures={"prompt_set": str(ps.name), "split": ps.split, "sealed": ps.sealed, "prompts": len(self.prompts),
                     "base": self.cfg.model.name_or_path, "weights": eta, "vectors_sha256": vectors, "scores": scores},
            config_sha256=sha256_json(cfg), prompts=[ps.path] if ps.path else [], prompt_set_sha256=ps.sha256(),
            judge=[package / "core" / "judges.py", package / "evaluation" / "scorers.py"], command=self.command,
            note=f"a look at a test set: {ps.sealed}")

    def score(self, weights: dict[str, float]) -> dict[str, float]:
        from pvlora.steering.generate import generate

        unknown = set(weights) - set(self.names)
        if unknown:
            raise ConfigError(f"no vector for {sorted(unknown)}; available: {', '.join(self.names)}")
        eta = {n: float(weights.get(n, 0.0)) for n in self.names}
        # Decoding is seeded (greedy, or sampling from cfg.seed), so a point scored once on a split
        # scores the same again: a sweep, tune and checks that share points pay for each once.
        key = (self.split, tuple(eta.values()))
        if key in self.scored:
            self.last_responses = self.scored[key][1]
            return dict(self.scored[key][0])
        set_weights(self.model, eta)
        # Adapters at η = 0 contribute nothing: leave them out of the forward pass (a third less
        # LoRA work in a two-preference sweep over three vectors). All of them off = the base.
        active = [n for n in self.names if eta[n] != 0.0]
        if active:
            self.model.base_model.set_adapter(active)
            scope = contextlib.nullcontext()
        else:
            scope = self.model.disable_adapter()
        with scope:
            responses: list[str] = []
            if any(s.needs_generation for s in self.scorers):
                e = self.cfg.eval
                responses = generate(self.model, self.tok, self.prompts, e.max_new_tokens, e.batch_size,
                                     e.do_sample, e.temperature, seed=self.cfg.seed)
            batch = EvalBatch(self.prompts, self.kinds, responses, self.model, self.tok, self.context)
            scores = {s.name: float(s.fn(batch)) for s in self.scorers}
        self.model.base_model.set_adapter(self.names)  # leave the model as load_composed made it
        # a sweep scores tens of points in one process: each point's generation and scoring buffers go
        # back to the OS before the next (glibc keeps freed pages mapped otherwise), when the point left
        # enough behind to be worth a full collection (SmolLM2's points leave hundreds of MB)
        # (on a GPU the resident set does not show what a point left in device memory: always release)
        on_cpu = next(self.model.parameters()).device.type == "cpu"
        release_memory(grown_by=RELEASE_AFTER_BYTES if on_cpu else None)
        # Here, not in each command: no caller can score a test set unrecorded; and before the point
        # is kept, so a log that cannot be written leaves no figure behind to return later.
        if self._logs_test_look():
            self._log_test_look(eta, scores)
        self.last_responses = responses
        self.scored[key] = (scores, responses)
        return dict(scores)
