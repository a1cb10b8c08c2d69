"""The `keras-siamese` command line (also `python -m keras_siamese`): train, evaluate, export.

```
python -m keras_siamese train --method=simclr --dataset=fashion_mnist --model_dir=runs/simclr
python -m keras_siamese evaluate --model_dir=runs/simclr
python -m keras_siamese export --model_dir=runs/simclr --export_dir=saved_models/simclr
python -m keras_siamese train --data_dir=photos --eval_data_dir=test_photos --model_dir=runs/own
python -m keras_siamese train --encoder=keras.applications:ConvNeXtTiny --image_size=64 ...
python -m keras_siamese export --model_dir=runs/own --gallery_dir=catalogue
python -m keras_siamese train --help
```

The first argument names the command; each command parses its own absl flags (a fresh
`absl.flags.FlagValues` per call, so `main` can be called repeatedly in one process, and
`COMMAND --help` lists exactly that command's flags with their defaults). Flags live only
here and in `examples/`: library code never reads `FLAGS`. A bad flag value, an unknown
method or dataset, or an impossible combination prints one `error: ...` line and exits with
status 2 before any training.

The help, the flags and the checks that need no data never import TensorFlow (nor, through
the lazily loading `keras_siamese` package, any module that does), so `--help` and flag errors
answer in a fraction of a second; a command imports it once it runs.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Sequence

from absl import app, flags

from keras_siamese.cli import evaluate_command, export_command, methods, train_command

COMMANDS = {
    "train": train_command,
    "evaluate": evaluate_command,
    "export": export_command,
}
HELP_ARGUMENTS = ("-h", "--help", "-help", "--helpfull", "--helpshort")
USAGE_ERROR_STATUS = 2


def _program(argv0: str) -> str:
    name = os.path.basename(argv0 or "")
    if name in ("__main__.py", "", "-c") or name.startswith("python"):
        return "python -m keras_siamese"
    return name


def main_help(program: str) -> str:
    """The top-level help: commands and methods."""
    lines = [f"usage: {program} COMMAND [--flag=value ...]", "", "commands:"]
    lines += [f"  {name:<9} {module.SUMMARY}" for name, module in COMMANDS.items()]
    lines += ["", "methods (train --method=...):"]
    lines += [f"  {method.name:<20} {method.summary}" for method in methods.METHODS.values()]
    lines += ["", f"`{program} COMMAND --help` lists the flags of a command with their defaults."]
    return "\n".join(lines)


def command_help(program: str, name: str, values: flags.FlagValues) -> str:
    """The help of one command: usage, summary, and every flag with its default."""
    module = COMMANDS[name]
    text = values.get_help(prefix="", include_special_flags=False)
    # absl groups flags under a line naming their module; the command is the group here.
    flag_lines = [line for line in text.splitlines() if line.startswith(" ")]
    header = [f"usage: {program} {module.USAGE}", "", module.SUMMARY]
    if module.__doc__:
        header += ["", module.__doc__.strip().split("\n\n")[-1].replace("\n", " ")]
    return "\n".join(header + ["", "flags:", *flag_lines])


def _fail(program: str, message: str, command: str | None = None) -> int:
    hint = f" (see `{program} {command} --help`)" if command else f" (see `{program} --help`)"
    print(f"error: {message}{hint}", file=sys.stderr)
    return USAGE_ERROR_STATUS


def main(argv: Sequence[str]) -> int:
    """Runs one command; `argv` is as in `sys.argv` (the program name first).

    Args:
        argv: `[program, command, --flag=value, ...]`.

    Returns:
        The exit status: 0 on success, 2 for a usage error (printed as one `error:` line).

    Example:
        >>> main(["keras-siamese", "train", "--method=simclr", "--model_dir=/tmp/run",
        ...       "--epochs=1", "--train_examples=512"])
        0
    """
    argv = list(argv)
    program = _program(argv[0] if argv else "")
    arguments = argv[1:]
    if not arguments or arguments[0] in HELP_ARGUMENTS or arguments[0] == "help":
        if arguments[1:2] and arguments[0] == "help" and arguments[1] in COMMANDS:
            arguments = [arguments[1], "--help"]
        else:
            print(main_help(program), file=sys.stdout if arguments else sys.stderr)
            return 0 if arguments else USAGE_ERROR_STATUS
    name = arguments[0]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        suggestion = f" Did you mean {close[0]!r}?" if close else ""
        return _fail(
            program,
            f"unknown command {name!r}; expected one of {', '.join(COMMANDS)}.{suggestion}",
        )
    values = flags.FlagValues()
    COMMANDS[name].define_flags(values)
    if any(argument in HELP_ARGUMENTS for argument in arguments[1:]):
        print(command_help(program, name, values))
        return 0
    try:
        rest = values([f"{program} {name}", *arguments[1:]])
    except flags.Error as error:
        return _fail(program, str(error), name)
    if len(rest) > 1:
        return _fail(program, f"unexpected arguments {rest[1:]}; flags are --name=value.", name)
    try:
        return COMMANDS[name].run(values) or 0
    except app.UsageError as error:
        return _fail(program, str(error), name)


def run() -> None:
    """The console script `keras-siamese`: `sys.exit(main(sys.argv))`."""
    sys.exit(main(sys.argv))
