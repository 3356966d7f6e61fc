"""`trio-pool setup <cli>`: point a CLI at the proxy (prints the change; --write applies)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trio_pool.cli.args import PROVIDER_CHOICES, add_config_args, config_from_args, emit


def add_commands(sub: Any) -> None:
    setup = sub.add_parser("setup", help="point a CLI at the proxy (prints; --write applies)")
    add_config_args(setup)
    setup.add_argument(
        "provider",
        choices=(*PROVIDER_CHOICES, "chat"),
        help="the CLI to point at the proxy; chat: prints what a Chat Completions client needs",
    )
    setup.add_argument("--write", action="store_true", help="change the file (backup first)")
    setup.add_argument("--undo", action="store_true", help="restore the file from its backup")
    setup.add_argument(
        "--server",
        "--url",
        dest="url",
        metavar="URL",
        help="the proxy's address (default: from the config's listen, http://127.0.0.1:8989)",
    )
    setup.add_argument(
        "--key", metavar="KEY", help="your pool key (shared pool): no login of your own needed"
    )
    setup.add_argument(
        "--custom-provider",
        action="store_true",
        help="codex: a provider of its own instead of moving the built-in one (sessions made "
        "before are then not offered by `codex resume`)",
    )
    setup.add_argument(
        "--model",
        metavar="MODEL",
        help="claude: the model Claude Code asks for (a Codex model such as gpt-6.1-sol runs "
        "on the pool's Codex accounts)",
    )
    setup.add_argument(
        "--small-model",
        metavar="MODEL",
        help="claude: its small/fast model (default with a Codex --model: gpt-5.4-mini)",
    )
    setup.add_argument(
        "--on",
        choices=("codex",),
        help="claude: run Claude Code on the pool's Codex accounts (a Codex --model and "
        "small model)",
    )
    setup.add_argument("--json", action="store_true", help="machine-readable output")


def _cmd_setup(args: argparse.Namespace) -> int:
    import os

    from trio_pool.errors import LoginError
    from trio_pool.setup.clients import (
        KEY_NEXT_STEPS,
        NEXT_STEPS,
        apply_setup,
        plan_setup,
        undo_setup,
    )
    from trio_pool.setup.edits import chat_settings, claude_models

    config = config_from_args(args)
    env, home = os.environ, Path.home()
    url = args.url or config.local_url
    claude_only = args.model or args.small_model or args.on
    if claude_only and args.provider != "claude":
        raise LoginError("--model, --small-model and --on are for `setup claude`")
    if args.provider == "chat":
        if args.write or args.undo:
            raise LoginError("a Chat Completions client has no file of ours: set these in it")
        text = chat_settings(url.rstrip("/"), args.key)
        next_step = (NEXT_STEPS if args.key is None else KEY_NEXT_STEPS)["chat"]
        emit(args, {"settings": text}, f"{text}\n{next_step}")
        return 0
    if args.undo:
        path, what = undo_setup(args.provider, env=env, home=home)
        emit(args, {"path": str(path), "undone": what}, f"{path}: {what}")
        return 0
    models = claude_models(args.model, args.small_model, on=args.on)
    plan = plan_setup(
        args.provider,
        url,
        env=env,
        home=home,
        key=args.key,
        custom_provider=args.custom_provider,
        models=models,
    )
    document: dict[str, Any] = {"path": str(plan.path), "changed": plan.changed, "written": False}
    next_step = (NEXT_STEPS if args.key is None else KEY_NEXT_STEPS)[args.provider]
    if not plan.changed:
        if args.write:
            apply_setup(plan)  # writes nothing; only makes a file holding the key 0600
        text = f"{plan.path} already points {args.provider} at {url}; nothing to change"
    elif not args.write:
        text = f"{plan.diff()}\nrun again with --write to apply this (a backup is kept)"
        document["diff"] = plan.diff()
    else:
        backup = apply_setup(plan)
        document |= {"written": True, "backup": str(backup)}
        text = (
            f"wrote {plan.path} (undo with `trio-pool setup {args.provider} --undo`)\n"
            f"next: {next_step}"
        )
    emit(args, document, text)
    return 0


COMMANDS = {"setup": _cmd_setup}
