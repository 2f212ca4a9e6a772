"""Print this checkout's SmolLM2 study settings as a draft pre-registration (stdout; no file written).

The study scores its test prompts only when pvlora/worlds/smollm2/preregistration.yaml is committed and
equals these settings (pvlora/worlds/smollm2/preregistration.py). Write the stopping rule, review every
value, commit the file, and only then run the study. The current test prompts are spent (docs/studies.md,
results/test_log.jsonl): new evaluation prompts come first.

    python benchmarks/tools/draft_preregistration.py > /tmp/draft.yaml
"""

from __future__ import annotations

from pathlib import Path

RESULT_FILES = ()  # writes nothing: prints to stdout


def main() -> int:
    from pvlora.worlds.smollm2.demo import study_config
    from pvlora.worlds.smollm2.preregistration import draft, run_settings

    print(draft(run_settings(study_config(Path("pvlora-demo-smollm2"), None))), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
