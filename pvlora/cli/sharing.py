"""`pvlora push` and `pull`: vectors on the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

from pvlora.cli.base import Command, add_overwrite
from pvlora.artifacts.atomic import check_output


def _push_args(p) -> None:
    p.add_argument("dir")
    p.add_argument("--repo-id", required=True, metavar="ORG/NAME")
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", help="branch to push to")
    p.add_argument("--token", help="Hub token (default: the logged-in token)")
    p.add_argument("--dry-run", action="store_true", help="print the files and model card that would be uploaded")


def cmd_push(a) -> int:
    from pvlora.artifacts.hub import plan_upload, push

    if a.dry_run:
        plan = plan_upload(a.dir, a.repo_id, a.private, a.revision)
        print(f"would upload to {plan.repo_id}{'@' + plan.revision if plan.revision else ''} "
              f"({'private' if plan.private else 'public'}): {', '.join(plan.files)}\n")
        print(plan.card)
        return 0
    print(f"[pvlora] pushed {a.dir} -> {push(a.dir, a.repo_id, a.private, a.revision, a.token)}")
    return 0


def _pull_args(p) -> None:
    p.add_argument("repo_id")
    p.add_argument("--out", help="copy it here (default: stay in the Hugging Face cache and print the path)")
    add_overwrite(p, "--out directory")
    p.add_argument("--token")


def cmd_pull(a) -> int:
    from pvlora.artifacts.hub import pull

    if a.out:  # before the download; a local directory pulled is an input the output must not replace
        local = (a.repo_id,) if Path(a.repo_id).expanduser().exists() else ()
        check_output(a.out, a.overwrite, "dir", inputs=local, flag="--out")
    print(f"[pvlora] {a.repo_id} -> {pull(a.repo_id, a.out, a.token, overwrite=a.overwrite)}")
    return 0


COMMANDS = [
    Command("push", "upload an adapter, vector or composition to the Hugging Face Hub", _push_args, cmd_push),
    Command("pull", "download a vector from the Hugging Face Hub (REPO_ID[@REVISION])", _pull_args, cmd_pull),
]
