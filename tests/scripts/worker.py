"""Runs the tests' multi-replica scripts one after another in ONE process, beside pytest.

Each script used to pay for its own process (importing TensorFlow and Keras takes seconds on
two cores); here they share one with 4 logical CPUs, started by tests/conftest.py when the
collection ends, so the scripts run while pytest goes on with the other tests. A job is a
script path with its arguments, or `-c CODE`; it runs as `__main__` with its output
captured, and its result (returncode, stdout, stderr) is written to OUT_DIR/<index>.json
(to a temporary name, then renamed). A job whose first argument is `--fresh` runs in its
own process instead (a check of what happens before TensorFlow initialises); `--test PATH
NAME PARAMETERS` calls a test function decorated with conftest.in_replica_process.

Usage: python worker.py JOBS_JSON OUT_DIR
"""

import contextlib
import importlib
import inspect
import io
import json
import os
import pathlib
import runpy
import subprocess
import sys
import tempfile
import traceback

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)

from scripts.logical_cpus import use_logical_cpus  # noqa: E402

use_logical_cpus(4)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402


def run_fresh(argv: list[str]) -> dict:
    result = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=600, env=os.environ
    )
    return {"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr}


def run_script(argv: list[str]) -> None:
    """Runs `argv` (a script and its arguments, or -c CODE) as `__main__`."""
    saved_argv = sys.argv
    try:
        if argv[0] == "-c":
            sys.argv = ["-c", *argv[2:]]
            exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
        else:
            sys.argv = list(argv)
            runpy.run_path(argv[0], run_name="__main__")
    finally:
        sys.argv = saved_argv


def run_test(path: str, name: str, parameters: str) -> None:
    """Calls the test `name` of the test module at `path` (see conftest.in_replica_process)."""
    module = importlib.import_module(os.path.splitext(os.path.basename(path))[0])
    test = getattr(module, name).replica_test
    arguments = json.loads(parameters)
    with tempfile.TemporaryDirectory(prefix=f"{name}_") as directory:
        if "tmp_path" in inspect.signature(test).parameters:
            arguments["tmp_path"] = pathlib.Path(directory)
        test(**arguments)


def run_here(job) -> dict:
    """Runs `job` in this process and captures what it prints."""
    stdout, stderr = io.StringIO(), io.StringIO()
    # Every MirroredStrategy numbers its collective groups from 1: a strategy over another
    # number of devices would join an earlier job's groups (see scripts/equivalence.py).
    tf.distribute.MirroredStrategy._collective_key_base += 1000
    keras.utils.set_random_seed(0)
    returncode = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            job()
        except SystemExit as exit_:
            returncode = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        except BaseException:
            traceback.print_exc()
            returncode = 1
        finally:
            keras.backend.clear_session()
            keras.mixed_precision.set_global_policy("float32")
    return {"returncode": returncode, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def run_job(argv: list[str]) -> dict:
    if argv[0] == "--fresh":
        return run_fresh(argv[1:])
    if argv[0] == "--test":
        return run_here(lambda: run_test(*argv[1:]))
    return run_here(lambda: run_script(argv))


def main(jobs_path: str, out_dir: str) -> None:
    with open(jobs_path) as file:
        jobs = json.load(file)
    for index, argv in enumerate(jobs):
        result = run_job(argv)
        temporary = os.path.join(out_dir, f"{index}.json.tmp")
        with open(temporary, "w") as file:
            json.dump(result, file)
        os.replace(temporary, os.path.join(out_dir, f"{index}.json"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
