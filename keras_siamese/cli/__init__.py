"""The `keras-siamese` command line (also `python -m keras_siamese`): train, evaluate, export,
embed.

```
python -m keras_siamese train --method=simclr --dataset=fashion_mnist --model_dir=runs/simclr
python -m keras_siamese evaluate --model_dir=runs/simclr
python -m keras_siamese export --model_dir=runs/simclr --export_dir=saved_models/simclr
python -m keras_siamese train --data_dir=photos --eval_data_dir=test_photos --model_dir=runs/own
python -m keras_siamese train --encoder=keras.applications:ConvNeXtTiny --image_size=64 ...
python -m keras_siamese export --model_dir=runs/own --gallery_dir=catalogue
python -m keras_siamese embed --model_dir=runs/own --data_dir=catalogue --output=vectors
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

The console stays readable: the entry points (`keras-siamese`, `python -m keras_siamese`) set
`TF_CPP_MIN_LOG_LEVEL=2` unless it is set (TensorFlow's C++ INFO and WARNING lines) and hold
to it the lines TensorFlow's C++ code prints while it is imported, which that variable does
not reach (TensorFlow 2.21 logs through absl before `absl::InitializeLog()`: `oneDNN custom
operations are on`, whatever the level; `quiet_tensorflow_start_up`), and while
a command runs absl logs warnings and errors only and TensorFlow's Python logger errors only
(the export's INFO lines run to thousands of characters). `--verbosity=N` (`-v N`, absl's
levels: 1 debug, 0 info, -1 warning, -2 error), before or after the command, sets absl's
verbosity instead and leaves TensorFlow's logger alone; so does an absl `--verbosity` already
parsed by a program that calls `main`. The levels are restored when `main` returns: library
code never changes them.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence

from absl import app, flags
from absl import logging as absl_logging

from keras_siamese.cli import (
    embed_command,
    evaluate_command,
    export_command,
    methods,
    train_command,
)

COMMANDS = {
    "train": train_command,
    "evaluate": evaluate_command,
    "export": export_command,
    "embed": embed_command,
}
HELP_ARGUMENTS = ("-h", "--help", "-help", "--helpfull", "--helpshort")
USAGE_ERROR_STATUS = 2
VERBOSITY_ARGUMENTS = ("--verbosity", "-v", "--v")
# A C++ log line: absl's `I0000 00:00:1796606115.644010   19852 port.cc:153] ...` or TSL's
# `2024-01-31 12:00:00.000000: I tensorflow/core/platform/cpu_feature_guard.cc:182] ...`.
CPP_LOG_LINE = re.compile(
    r"^(?:(?P<absl>[IWEF])\d{4} [\d:.]+\s+\d+ |\d{4}-\d\d-\d\d [\d:.]+: (?P<tsl>[IWEF]) )\S+:\d+\] "
)
CPP_SEVERITIES = "IWEF"  # TF_CPP_MIN_LOG_LEVEL=N hides the first N of them
ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"
VERBOSITY_HELP = (
    "  -v,--verbosity: absl log verbosity: 1 debug, 0 info, -1 warning, -2 error (or the "
    "names);\n    without it absl logs warnings and TensorFlow errors only."
)


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
    lines += ["", "every command:", VERBOSITY_HELP]
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
    return "\n".join(header + ["", "flags:", *flag_lines, "", "every command:", VERBOSITY_HELP])


def _fail(program: str, message: str, command: str | None = None) -> int:
    hint = f" (see `{program} {command} --help`)" if command else f" (see `{program} --help`)"
    print(f"error: {message}{hint}", file=sys.stderr)
    return USAGE_ERROR_STATUS


def split_verbosity(arguments: Sequence[str]) -> tuple[list[str], str | None]:
    """Takes `--verbosity=N`, `--verbosity N`, `-v N` or `-v=N` out of `arguments`.

    Returns:
        `(the other arguments, the last verbosity given or None)`.
    """
    rest, verbosity = [], None
    arguments = list(arguments)
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        name, separator, value = argument.partition("=")
        if name in VERBOSITY_ARGUMENTS:
            if not separator:
                index += 1
                value = arguments[index] if index < len(arguments) else ""
            verbosity = value
        else:
            rest.append(argument)
        index += 1
    return rest, verbosity


def parse_verbosity(text: str) -> int:
    """absl's verbosity from `--verbosity`: an integer or debug/info/warning/error/fatal.

    Raises:
        absl.app.UsageError: for anything else.
    """
    names = {"debug": 1, "info": 0, "warning": -1, "warn": -1, "error": -2, "fatal": -3}
    value = text.strip().lower()
    if value in names:
        return names[value]
    try:
        return int(value)
    except ValueError:
        raise app.UsageError(
            "--verbosity must be an integer (1 debug, 0 info, -1 warning, -2 error) or one of "
            f"{', '.join(names)}. Received: --verbosity={text}"
        ) from None


def _absl_verbosity_given() -> bool:
    """Whether a program calling `main` parsed an absl `--verbosity` of its own."""
    return flags.FLAGS.is_parsed() and bool(flags.FLAGS["verbosity"].present)


@contextlib.contextmanager
def console_logging(verbosity: int | None) -> Iterator[None]:
    """absl at `verbosity`, or warnings only with TensorFlow's logger at errors; restored after.

    Args:
        verbosity: absl's verbosity given on the command line, or None for the quiet console
            (unless the calling program parsed an absl `--verbosity`, which is kept).
    """
    absl_logger = logging.getLogger("absl")
    tensorflow_logger = logging.getLogger("tensorflow")  # what `tf.get_logger()` returns
    saved = (
        absl_logging.get_verbosity(),
        absl_logger.level,
        tensorflow_logger.level,
        logging.root.level,
    )
    if verbosity is not None:
        absl_logging.set_verbosity(verbosity)
    elif not _absl_verbosity_given():
        absl_logging.set_verbosity(absl_logging.WARNING)
        tensorflow_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(saved[0])  # also moves the levels: set them back after
        absl_logger.setLevel(saved[1])
        tensorflow_logger.setLevel(saved[2])
        logging.root.setLevel(saved[3])


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
    arguments, verbosity_text = split_verbosity(argv[1:])
    verbosity = None
    if verbosity_text is not None:
        try:
            verbosity = parse_verbosity(verbosity_text)
        except app.UsageError as error:
            return _fail(program, str(error))
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
        with console_logging(verbosity):
            return COMMANDS[name].run(values) or 0
    except app.UsageError as error:
        return _fail(program, str(error), name)


def min_log_level() -> int:
    """`TF_CPP_MIN_LOG_LEVEL` as an integer (0, every line, when unset or not a number)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def start_up_lines_kept(text: str, min_level: int) -> str:
    """`text` without the C++ log lines that `TF_CPP_MIN_LOG_LEVEL=min_level` means to hide.

    Args:
        text: what was printed on standard error (lines).
        min_level: 1 hides INFO lines, 2 also WARNING lines (and absl's notice that it logs
            to standard error before `absl::InitializeLog()`), 3 also ERROR lines.

    Returns:
        The other lines, unchanged and in order.
    """
    kept = []
    for line in text.splitlines(keepends=True):
        match = CPP_LOG_LINE.match(line)
        if match:
            severity = CPP_SEVERITIES.index(match["absl"] or match["tsl"])
        elif line.startswith(ABSL_PREAMBLE):
            severity = CPP_SEVERITIES.index("W")
        else:
            severity = len(CPP_SEVERITIES)
        if severity >= min_level:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def start_up_lines_filtered(min_level: int) -> Iterator[None]:
    """Holds file descriptor 2 (C++ and Python alike), then prints what `min_level` keeps.

    Args:
        min_level: as in `start_up_lines_kept`.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to hold
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = start_up_lines_kept(held.read().decode(errors="replace"), min_level)
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """Runs a module's loader inside `start_up_lines_filtered`, then steps aside."""

    def __init__(self, loader: importlib.abc.Loader, min_level: int):
        self.loader = loader
        self.min_level = min_level

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietTensorFlowFinder)]
        with start_up_lines_filtered(self.min_level):
            self.loader.exec_module(module)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` with a loader that filters its start-up lines (and then leaves).

    A mere look-up (`importlib.util.find_spec("tensorflow")`) leaves it in place.
    """

    def __init__(self, min_level: int):
        self.min_level = min_level
        self.finding = False

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or self.finding:
            return None
        self.finding = True  # the other finders answer the look-up below
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self.min_level)
        return spec


def quiet_tensorflow_start_up() -> None:
    """Filters the lines TensorFlow's C++ code prints while it is imported, as
    `TF_CPP_MIN_LOG_LEVEL` asks (which those lines ignore): nothing to do when it is 0 or
    TensorFlow is already imported. TensorFlow is imported only when a command needs it.
    """
    if min_log_level() > 0 and "tensorflow" not in sys.modules:
        if not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _QuietTensorFlowFinder(min_log_level()))


def run() -> None:
    """The console script `keras-siamese` (and `python -m keras_siamese`): `main(sys.argv)`.

    Sets `TF_CPP_MIN_LOG_LEVEL=2` unless the environment sets it: TensorFlow, imported later
    by the command, then prints no C++ INFO or WARNING lines, nor the start-up lines it prints
    while it is imported whatever the level (`quiet_tensorflow_start_up`).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    quiet_tensorflow_start_up()
    sys.exit(main(sys.argv))
