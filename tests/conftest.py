"""Shared test helpers: seeding, tiny encoders and tiny data."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One OpenMP thread (scikit-learn's t-SNE, OpenBLAS), set before numpy loads them: two pytest
# workers and the replica process already keep both cores busy, and an OpenMP team whose
# second thread waits for a core spins at every barrier (a 40-point t-SNE took 40-70 s on a
# busy 2-core machine, 0.6 s with one thread). TensorFlow's thread pools are not OpenMP.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random state."""
    keras.utils.set_random_seed(0)
    yield


def tiny_encoder(input_shape=(16, 16, 1), width=8, name="tiny_encoder"):
    """A two-conv encoder returning pooled features of size `2 * width`."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name=name)


@keras.saving.register_keras_serializable(package="keras_siamese_tests")
class FlipSecondHalf(keras.layers.Layer):
    """Deterministic views: the images and their mirror images, in [0, 1]. Defined once here:
    two test modules registering one name would make `load_model` return whichever class was
    registered last (its config then names the other module)."""

    def call(self, images, training=None):
        images = tf.cast(images, tf.float32) / 255.0
        first, second = tf.split(images, 2, axis=0)
        return tf.concat([first, tf.reverse(second, axis=[2])], axis=0)


def random_images(count=8, shape=(16, 16, 1), seed=0):
    """uint8 images in [0, 255]."""
    return np.random.default_rng(seed).integers(0, 256, (count,) + shape).astype("uint8")


# ----------------------------------------------------------------- the shared replica process
# Tests marked `@pytest.mark.replica_job(script, *args)` (or `("-c", code)`) get, through the
# `replica_job` fixture, the `subprocess.CompletedProcess` of that script run by
# tests/scripts/worker.py: one process with 4 logical CPUs for all of them, started when the
# collection ends so that it works while pytest runs the other tests (on 2 cores, the two
# processes overlap). Tests decorated with `in_replica_process` run there whole.

WORKER = os.path.join(os.path.dirname(__file__), "scripts", "worker.py")
_shared = {}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "replica_job(script, *args): run in the shared multi-replica process"
    )


def in_replica_process(test):
    """Runs `test` in the shared replica process, beside the other tests: for long trainings
    and runs that wait on their own processes. The test here waits for its result and fails
    with its traceback. The only fixture is `tmp_path` (a temporary directory of the worker);
    `parametrize` values must be JSON values."""
    import inspect

    def wait_for_it(replica_job, **parameters):
        assert replica_job.returncode == 0, replica_job.stdout[-3000:] + replica_job.stderr[-6000:]
        print(replica_job.stdout, end="")

    signature = inspect.signature(test)
    first = inspect.Parameter("replica_job", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    parameters = [first, *(p for p in signature.parameters.values() if p.name != "tmp_path")]
    wait_for_it.__signature__ = signature.replace(parameters=parameters)
    for attribute in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(wait_for_it, attribute, getattr(test, attribute))
    wait_for_it.pytestmark = list(getattr(test, "pytestmark", []))
    wait_for_it.replica_test = test
    return wait_for_it


def _job_of(item):
    function = getattr(item, "function", None)
    if hasattr(function, "replica_test"):
        import json

        parameters = getattr(item, "callspec", None)
        parameters = {} if parameters is None else parameters.params
        return ("--test", str(item.path), item.originalname, json.dumps(parameters))
    marker = item.get_closest_marker("replica_job")
    return None if marker is None else tuple(marker.args)


def _start_worker(jobs, directory):
    import json
    import subprocess
    import sys

    jobs_path = os.path.join(directory, "jobs.json")
    with open(jobs_path, "w") as file:
        json.dump([list(job) for job in jobs], file)
    environment = dict(os.environ, CUDA_VISIBLE_DEVICES="", KERAS_BACKEND="tensorflow")
    log = open(os.path.join(directory, "worker.log"), "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, WORKER, jobs_path, directory],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environment,
    )
    _shared.update(process=process, log=log, directory=directory, jobs=list(jobs))


def _shared_directory(config):
    """The replica worker's directory: one per pytest run, also under pytest-xdist, whose
    workers all collect every test and share the run's `testrunuid`."""
    import tempfile

    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return tempfile.mkdtemp(prefix="keras_siamese_replicas_"), True
    directory = os.path.join(
        tempfile.gettempdir(), f"keras_siamese_replicas_{workerinput['testrunuid']}"
    )
    os.makedirs(directory, exist_ok=True)
    return directory, workerinput["workerid"] == "gw0"  # one worker starts it


def pytest_collection_finish(session):
    if session.config.option.collectonly:
        return
    jobs = list(dict.fromkeys(job for job in map(_job_of, session.items) if job is not None))
    if jobs:
        directory, starts = _shared_directory(session.config)
        if starts:
            _start_worker(jobs, directory)
        else:  # another xdist worker runs the jobs; this one reads their results
            _shared.update(process=None, directory=directory, jobs=list(jobs))


def pytest_sessionfinish(session):
    process = _shared.get("process")
    xdist = getattr(session.config, "workerinput", None) is not None
    if process is not None and process.poll() is None:
        if xdist:  # other xdist workers may still wait for its results: let it finish
            try:
                process.wait(timeout=900)
            except Exception:  # noqa: BLE001 - a hung worker is killed below
                pass
        if process.poll() is None:
            process.kill()
            process.wait()
    if "log" in _shared:
        import shutil

        _shared["log"].close()
        if not xdist:  # under xdist the others may read results later: /tmp keeps them
            shutil.rmtree(_shared["directory"], ignore_errors=True)


@pytest.fixture
def replica_job(request):
    """The finished `subprocess.CompletedProcess` of this test's `replica_job` marker."""
    import json
    import subprocess
    import time

    job = _job_of(request.node)
    assert job is not None, "replica_job needs @pytest.mark.replica_job(script, *args)"
    assert job in _shared.get("jobs", ()), f"the worker was not given {job[:2]}"
    process, directory = _shared["process"], _shared["directory"]
    path = os.path.join(directory, f"{_shared['jobs'].index(job)}.json")
    deadline = time.monotonic() + 900
    while not os.path.exists(path):
        if process is not None and process.poll() is not None and not os.path.exists(path):
            with open(os.path.join(directory, "worker.log")) as file:
                log = file.read()[-5000:]
            pytest.fail(f"the replica worker exited with {process.returncode}:\n{log}")
        if time.monotonic() > deadline:
            pytest.fail(f"the replica worker did not finish {job[:2]} in time")
        time.sleep(0.2)
    with open(path) as file:
        result = json.load(file)
    return subprocess.CompletedProcess(list(job), **result)


def run_module(*arguments, timeout=600):
    """`python -m keras_siamese ARGUMENTS` in a pipe with TF_CPP_MIN_LOG_LEVEL unset, as a user
    runs it (from the repository root); asserts it succeeds, returns `(stdout, stderr)`."""
    import pathlib
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "keras_siamese", *arguments],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=str(pathlib.Path(__file__).resolve().parents[1]),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, result.stderr
