"""Write benchmarks/README.md from benchmarks/README.template.md, and the result sections of README.md
and docs/ from benchmarks/templates/, with the figures of benchmarks/results/: the text cannot drift
from them.

A whole-file template replaces its output. A section template replaces the lines of its output
between ``<!-- generated from benchmarks/templates/NAME.md -->`` and ``<!-- end generated -->``;
``PAIRS`` below says which template goes where.

In the template, ``{{ expr }}`` or ``{{ expr | spec }}`` is replaced by the value of the Python
expression ``expr`` (formatted with the format ``spec``, e.g. ``.3f``, ``,.0f``, ``.1%``). Names in
``expr``: one per results file (``reweight`` for results/reweight.json, ``smollm2_study`` for
results/smollm2_study/summary.json; ``smollm2_study_rows`` for its results.csv, numbers as
floats; ``test_log`` for results/test_log.jsonl, one record per line, in order), whose fields read as
attributes (``reweight.speedup``) or items (``refusal_judge["by_source"]``), and the helpers below
(``sci``, ``err``, ``mins``, ``ok``, ``find``, ``rank_corr``, ``looks``, ``history_table``,
``script_index``, ``old_commands``).

The index in benchmarks/README.md (``script_index``) is built from the scripts themselves: each
script in measure/, choose/, estimate/ and tools/ declares the files it writes in ``RESULT_FILES``
(read from its source, nothing imported), and the rows and sections of the templates whose
placeholders read a results file are where its figures appear.

    python benchmarks/tools/render_readme.py           # rewrite every output
    python benchmarks/tools/render_readme.py --check   # exit 1 if an output is not what the results give
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent  # benchmarks/tools/
BENCHMARKS = HERE.parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results"
TEMPLATES = BENCHMARKS / "templates"
TEMPLATE = BENCHMARKS / "README.template.md"
README = BENCHMARKS / "README.md"
ROOT_README = REPO / "README.md"
DOCS = REPO / "docs"
SCRIPT_FOLDERS = ("measure", "choose", "estimate", "tools")
RESULT_FILES = ()  # writes no results: the README, docs/ and benchmarks/README.md (PAIRS)
# (template, output, whole file or a marked section of it)
PAIRS = [(TEMPLATES / "readme_state.md", ROOT_README, "section"),
         (TEMPLATES / "smollm2_sealed.md", DOCS / "studies.md", "section"),
         (TEMPLATES / "smollm2_study.md", DOCS / "studies.md", "section"),
         (TEMPLATES / "training_path.md", DOCS / "real-models.md", "section"),
         (TEMPLATES / "module_graph.md", DOCS / "architecture.md", "section"),
         (TEMPLATE, README, "file")]
PLACEHOLDER = re.compile(r"\{\{(.+?)\}\}", re.S)
SPEC = re.compile(r"[<>=^]?[+\- ]?#?0?\d*[,_]?(?:\.\d+)?[a-zA-Z%]?")  # Python's format-spec mini-language


class Node(dict):
    """A results object whose fields also read as attributes (``r.speedup``); nested objects too."""

    def __getattr__(self, key):
        try:
            return wrap(self[key])
        except KeyError:
            raise AttributeError(f"no field {key!r} (has: {', '.join(self)})") from None

    def __getitem__(self, key):
        return wrap(dict.__getitem__(self, key))

    def items(self):
        return [(k, wrap(v)) for k, v in dict.items(self)]

    def values(self):
        return [wrap(v) for v in dict.values(self)]

    def get(self, key, default=None):
        return wrap(dict.get(self, key, default))


def wrap(value):
    if isinstance(value, dict) and not isinstance(value, Node):
        return Node(value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value


def sci(x: float, digits: int = 1) -> str:
    """7.4e-8, not Python's 7.4e-08."""
    mantissa, exponent = f"{x:.{digits}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def err(x: float) -> str:
    """An error as 7.4e-8 when small, 0.89 when not."""
    return sci(x) if x < 0.01 else f"{x:.2f}"


def mins(seconds: float) -> str:
    """Seconds as '9 min 25 s'."""
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s" if m else f"{s} s"


def ok(passed: bool) -> str:
    return "✓" if passed else "✗"


def ci(r) -> str:
    """A rate summary (pvlora.core.intervals.rate_summary) as 'k/n = 0.42 [0.35, 0.50; 0.31–0.55]':
    the rate, its Clopper–Pearson interval and, when it has one, its topic-bootstrap interval."""
    cp, cb = r["clopper_pearson"], r.get("cluster_bootstrap")
    return (f"{r['k']}/{r['n']} = {r['rate']:.2f} [{cp[0]:.2f}, {cp[1]:.2f}"
            + (f"; {cb[0]:.2f}–{cb[1]:.2f}]" if cb else "]"))


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def tuned_rows(s) -> str:
    """The sealed study's table rows at tune's mix on both halves (or why there is none)."""
    val, test = s.validation_checks.no_over_refusal, s.checks.no_over_refusal
    if "weights" not in test:
        return (f"| no over-refusal | FAIL: `tune` found no mix on validation that meets its constraint "
                f"({s.tune.get('constraint', '')}) | FAIL |")
    w = test.weights
    rows = [("harmful refused", "strict_refusal_harmful"), ("… harmful: partial", "partial_harmful"),
            ("… harmful: degenerate", "degenerate_harmful"), ("… XSTest-style refused", "strict_refusal_xstest")]
    out = [f"| `tune`'s mix (helpful {w.helpful:g}, harmless {w.harmless:g}): {label} | {ci(val.rates[k])} | "
           f"{ci(test.rates[k])} |" if i == 0 else f"| {label} | {ci(val.rates[k])} | {ci(test.rates[k])} |"
           for i, (label, k) in enumerate(rows)]
    out.append(f"| … benign refused or degenerate (bound: base + {s.thresholds.over_refusal}) | {ci(val.rates.failed_benign)} "
               f"(≤ {val.failed_benign_bound:.2f}) | {ci(test.rates.failed_benign)} (≤ {test.failed_benign_bound:.2f}) |")
    for form in test.by_form:
        out.append(f"| … benign {form} refused | {ci(val.by_form[form])} | {ci(test.by_form[form])} |")
    out.append(f"| no over-refusal | {verdict(val['pass'])} | {verdict(test['pass'])} |")
    return "\n".join(out)


def sealed_brief(s, log) -> str:
    """The README's one line on the pre-registered SmolLM2 test: verdicts and the figures behind them."""
    look = looks(log, preregistered=True)[0]
    v, t = s.verdicts, s.checks
    top = str(max(s.span))
    line = (f"**Pre-registered test on a second prompt set: control {verdict(v.control['pass'])}, no over-refusal "
            f"{verdict(v.no_over_refusal['pass'])}** (a check passes only when it holds on validation and on test; "
            f"scored once, {look.date[:10]}, under the pre-registration committed in "
            f"{look.preregistration.commit[:7]}). On test, at η_harmless = {float(top):g} harmful requests are "
            f"refused {ci(t.control.points[top].strict_refusal_harmful)} (base "
            f"{ci(t.base.strict_refusal_harmful)}; degenerate {ci(t.control.points[top].degenerate_harmful)})")
    nor = t.no_over_refusal
    if "weights" in nor:
        line += (f"; `tune`'s mix ({nor.weights.helpful:g}, {nor.weights.harmless:g}) refuses "
                 f"{ci(nor.rates.strict_refusal_harmful)} of harmful requests and leaves {ci(nor.rates.failed_benign)} "
                 f"of benign ones refused or degenerate (base {ci(t.base.failed_benign)})")
    else:
        line += "; `tune` found no mix on validation that meets its constraint"
    pub = t.get("public") or {}
    if pub and "tuned_mix" in next(iter(pub.values())):
        line += "; " + ", ".join(f"{name} refused {p.base.strict_refusal_harmful.rate:.2f} → "
                                 f"{p.tuned_mix.strict_refusal_harmful.rate:.2f}" for name, p in pub.items())
    return line + ": [docs/studies.md](docs/studies.md#the-pre-registered-test-a-second-evaluation-set-scored-once)."


def public_rows(s) -> str:
    """The sealed study's HarmBench and AdvBench figures (test sets: scored once, nothing chosen on them)."""
    pub = s.checks.get("public") or {}
    if not pub:
        return "The public sets were not scored."
    points = [("base", "base")] + ([("tuned_mix", "`tune`'s mix")] if "tuned_mix" in next(iter(pub.values())) else [])
    cols = [f"{label}: {what}" for _, label in points for what in ("refused", "partial", "degenerate")]
    out = ["| public set (scored once) | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, p in pub.items():
        cells = [ci(p[key][m]) for key, _ in points for m in ("strict_refusal_harmful", "partial_harmful", "degenerate_harmful")]
        out.append(f"| {name} ({p.prompts} harmful prompts) | " + " | ".join(cells) + " |")
    return "\n".join(out)


def find(rows, **match):
    """The one row of ``rows`` whose fields equal ``match``."""
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    if len(found) != 1:
        raise LookupError(f"{len(found)} rows match {match}")
    return found[0]


def rank_corr(xs, ys) -> float:
    """Spearman's ρ (Pearson's r of average ranks, ties shared), as scipy.stats.spearmanr gives it."""
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return r

    a, b = ranks(list(xs)), ranks(list(ys))
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / (sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b)) ** 0.5


TEST_LOG = RESULTS / "test_log.jsonl"


def looks(log, study: str = "smollm2", preregistered: bool | None = False) -> list:
    """The records of ``log`` that evaluated a test split of ``study``, in order: by default those of
    the first evaluation set (no pre-registration), with ``preregistered=True`` the sealed ones, with
    None all."""
    return [r for r in log if r.get("split") == "test" and r.get("study") == study
            and (preregistered is None or bool(r.get("preregistration")) == preregistered)]


def history_table(runs) -> str:
    """One markdown row per test evaluation of the SmolLM2 study: its verdicts, figures and what changed after it."""
    out = []
    for i, r in enumerate(runs, 1):
        c = r.figures.checks
        ctl = c.get("control") or {}
        rho = "undefined" if ctl.get("spearman") is None else f"{ctl.spearman:.3f}"
        nor = c.get("no_over_refusal") or {}
        if "weights" in nor:
            w, base = nor.weights, c.base.refusal_benign
            mix = (f"tuned ({w.helpful:g}, {w.harmless:g}): benign {nor.test.refusal_benign:.2f}, bound "
                   f"{base + r.figures.thresholds.over_refusal:.2f}")
        else:
            mix = "no feasible mix on validation"
        after = "; ".join(f"{a.commit} {a.what.split(':')[0]}" for a in r.get("changed_after") or []) or "–"
        norm = r.figures.get("harmless_vector_norm")
        out.append(f"| {i} | {r.commit[:7]} ({r.date[:10]}){' (rebuilt from git)' if r.source == 'reconstructed from git' else ''} "
                   f"| {'' if norm is None else f'{norm:.2f}'} | {r.checks.get('control', '–')}: ρ {rho}, "
                   f"{ctl.get('rise_at_largest_eta', 0):+.2f} | {r.checks.get('no_over_refusal', '–')}: {mix} | {after} |")
    return "\n".join(out)


def declared_results(path: Path) -> tuple[str, ...] | None:
    """The files a script's module-level ``RESULT_FILES`` declares (relative to benchmarks/), read from
    its source; None when it declares none."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "RESULT_FILES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    return None


def scripts() -> list[tuple[Path, tuple[str, ...] | None]]:
    """Every script of measure/, choose/, estimate/ and tools/ with the files it declares (None: it
    declares nothing, which the index shows and tests/package/test_benchmarks_readme.py refuses); modules
    named ``_*`` are helpers, not scripts."""
    return [(path, declared_results(path)) for folder in SCRIPT_FOLDERS
            for path in sorted((BENCHMARKS / folder).glob("[!_]*.py"))]


def result_names() -> dict[str, str]:
    """Template name -> results file (relative to benchmarks/), as :func:`namespace` binds them."""
    names = {"test_log": "results/test_log.jsonl"}
    names |= {p.stem: f"results/{p.name}" for p in RESULTS.glob("*.json")}
    names |= {p.parent.name: f"results/{p.parent.name}/summary.json" for p in RESULTS.glob("*/summary.json")}
    names |= {f"{p.parent.name}_rows": f"results/{p.parent.name}/results.csv" for p in RESULTS.glob("*/results.csv")}
    return names


GENERIC = {"summary.json", "results.csv"}  # names other outputs have too (pvlora-demo/summary.json)


def _reads(text: str, names: dict[str, str]) -> set[str]:
    """The results files the placeholders of ``text`` read, and those it names (``results/x.json``;
    a file in a folder of results/ also by its own name, unless other outputs share it)."""
    found = {f for f in set(names.values()) | {p.relative_to(BENCHMARKS).as_posix() for p in RESULTS.rglob("*")
                                                if p.is_file()}
             if f in text or (f.count("/") > 1 and Path(f).name not in GENERIC and Path(f).name in text)}
    for m in PLACEHOLDER.finditer(text):
        expr, _, spec = m.group(1).rpartition(" | ")
        if not expr or not SPEC.fullmatch(spec.strip()):
            expr = m.group(1)
        try:
            tree = ast.parse(expr.strip(), mode="eval")
        except SyntaxError:
            continue
        found |= {names[n.id] for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in names}
    return found


def where_shown() -> dict[str, list[str]]:
    """Results file -> where its figures appear: rows (``row 3``) and sections (``§7``) of
    README.template.md, and the README or docs/ file each section template renders into."""
    names, shown = result_names(), {}
    section = None
    for line in TEMPLATE.read_text().splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            number = re.match(r"([\d–-]+)\.", title)
            section = f"§{number[1]}" if number else f"§ {title.split(':')[0]}"
            continue
        row = re.match(r"\| ([\w–-]+) \| (.+?) \|", line)
        if section is None:  # the table of comparisons above the first heading: one row each
            label = None if not row else f"row {row[1]}" if row[1] != "–" else f"row “{row[2]}”"
        else:
            label = section
        for f in _reads(line, names):
            if label and label not in shown.setdefault(f, []):
                shown[f].append(label)
    for template, out, mode in PAIRS:
        if mode == "section":
            for f in _reads(template.read_text(), names):
                shown.setdefault(f, []).append(out.relative_to(REPO).as_posix())
    return shown


def script_index() -> str:
    """The index of benchmarks/README.md, as markdown rows: script, a file it writes, the rows and sections
    of benchmarks/README.md that show that file's figures, and the README or docs/ pages that do."""
    shown, out = where_shown(), []
    for path, declared in scripts():
        command = f"`python {path.relative_to(REPO).as_posix()}`"
        if declared is None:
            out.append(f"| {command} | declares no `RESULT_FILES` | – | – |")
            continue
        for f in declared or ("",):
            where = shown.get(f, [])
            here = ", ".join(w for w in where if not w.endswith(".md")) or "–"
            pages = ", ".join(f"[{w}](../{w})" for w in where if w.endswith(".md")) or "–"
            state = "" if not f or (BENCHMARKS / f).exists() else " (not written yet)"
            what = f"`{f}`{state}" if f else "nothing under results/"
            out.append(f"| {command} | {what} | {here} | {pages} |")
            command = "″"  # the same script, another file
    return "\n".join(out)


def undeclared() -> list[str]:
    """Files under results/ that no script declares (each should have one)."""
    declared = {f for _, files in scripts() for f in files or ()}
    return sorted(p.relative_to(BENCHMARKS).as_posix() for p in RESULTS.rglob("*")
                  if p.is_file() and not p.name.endswith(".tmp") and p.relative_to(BENCHMARKS).as_posix() not in declared)


OLD_COMMAND = re.compile(r"benchmarks/([\w/]+\.py)")


def old_commands() -> str:
    """Markdown rows: each results file that records a script path no longer in the tree, that path and the
    script's path now (the results files are evidence and stay as they were written)."""
    now = {path.name: path.relative_to(REPO).as_posix() for path, _ in scripts()}
    rows = []
    for path in sorted(RESULTS.rglob("*")):
        if not path.is_file() or path.suffix not in (".json", ".jsonl", ".csv", ".yaml"):
            continue
        for old in sorted(set(OLD_COMMAND.findall(path.read_text()))):
            if not (BENCHMARKS / old).exists():
                new = now.get(Path(old).name)
                rows.append(f"| `{path.relative_to(BENCHMARKS).as_posix()}` | `benchmarks/{old}` "
                            f"| {f'`{new}`' if new else 'no script of that name now'} |")
    return "\n".join(rows) or "| – | – | – |"


def slug(heading: str) -> str:
    """A markdown heading's anchor as GitHub makes it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def missed(ns: dict) -> str:
    """Markdown bullets: every line of benchmarks/README.md (as rendered now) that marks a target missed (✗),
    so that the README shows each one too."""
    out, section = [], None
    for line in render(TEMPLATE.read_text(), ns, TEMPLATE.name).splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        if not line.startswith("|") or "✗" not in line:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if section is None:  # the table of comparisons: #, comparison, command, result, target
            what = re.split(r"[:(]", cells[1])[0].strip()
            target = "; ".join(part.strip() for part in cells[-1].split(";") if "✗" in part)
            out.append(f"- [row {cells[0]}](benchmarks/README.md), {what}: {target}")
        else:
            out.append(f"- [§{section}](benchmarks/README.md#{slug(section)}): {cells[0]}: {cells[1]}; required "
                       f"{cells[-1]}")
    return "\n".join(out) or "- none"


def namespace() -> dict:
    ns = {"sci": sci, "err": err, "mins": mins, "ok": ok, "ci": ci, "verdict": verdict, "tuned_rows": tuned_rows, "sealed_brief": sealed_brief,
          "public_rows": public_rows, "find": find, "rank_corr": rank_corr, "looks": looks,
          "history_table": history_table, "script_index": script_index, "old_commands": old_commands,
          "undeclared": undeclared}
    ns["missed"] = lambda: missed(ns)
    ns["test_log"] = [wrap(json.loads(line)) for line in TEST_LOG.read_text().splitlines() if line.strip()] \
        if TEST_LOG.exists() else []
    for path in sorted(RESULTS.glob("*.json")):
        ns[path.stem] = wrap(json.loads(path.read_text()))
    # the shipped judge4-v3 and -v4 weights carry the cross-validation that chose them (train_judge.py writes it)
    for v in ("v3", "v4"):
        path = BENCHMARKS.parent / f"pvlora/data/shipped/judge/judge4-{v}.json"
        if path.exists():
            w = json.loads(path.read_text())
            ns[f"judge_{v}_weights"] = wrap({k: x for k, x in w.items() if k not in ("weights", "bias")})
    for path in sorted(RESULTS.glob("*/summary.json")):
        ns[path.parent.name] = wrap(json.loads(path.read_text()))
    for path in sorted(RESULTS.glob("*/results.csv")):
        with path.open() as f:
            ns[f"{path.parent.name}_rows"] = [wrap({k: _number(v) for k, v in row.items()}) for row in csv.DictReader(f)]
    return ns


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


SAFE_BUILTINS = {f.__name__: f for f in (abs, all, any, enumerate, float, int, len, max, min, round, sorted, str, sum,
                                         zip)}


def render(template: str, ns: dict, name: str = TEMPLATE.name) -> str:
    def one(m: re.Match) -> str:
        expr, _, spec = m.group(1).rpartition(" | ")
        if not expr or not SPEC.fullmatch(spec.strip()):  # a " | " inside the expression, not a spec
            expr, spec = m.group(1), ""
        try:
            value = eval(expr.strip(), {"__builtins__": SAFE_BUILTINS, **ns})  # globals: comprehensions see them
            return format(value, spec.strip())
        except Exception as exc:
            line = template.count("\n", 0, m.start()) + 1
            raise SystemExit(f"{name}:{line}: {{{{{m.group(1).strip()}}}}}: {type(exc).__name__}: {exc}") from None

    return PLACEHOLDER.sub(one, template)


def expected(template: Path, out: Path, mode: str, ns: dict) -> str:
    """What ``out`` should hold: the rendered template, or ``out`` with its marked section rendered."""
    text = render(template.read_text(), ns, template.name)
    if mode == "file":
        return text
    rel = template.relative_to(REPO).as_posix()
    begin, end = f"<!-- generated from {rel} -->\n", "<!-- end generated -->\n"
    current = out.read_text()
    i = current.find(begin)
    j = current.find(end, i + len(begin))
    if i < 0 or j < 0:
        raise SystemExit(f"{out}: no section marked {begin.strip()} ... {end.strip()}")
    return current[: i + len(begin)] + text + current[j:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when an output differs")
    a = p.parse_args(argv)
    ns, stale = namespace(), []
    for template, out, mode in PAIRS:
        text = expected(template, out, mode, ns)
        if out.read_text() != text:
            stale.append(out)
            if not a.check:
                out.write_text(text)
                print(f"wrote {out}")
    if a.check and stale:
        print(f"out of date with {RESULTS}: {', '.join(map(str, stale))}; run python benchmarks/tools/render_readme.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
