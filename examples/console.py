"""What the Fashion-MNIST examples' console shows: their results and Keras' progress only.

TensorFlow writes C++ lines (oneDNN, XLA, ...) straight to file descriptor 2, whatever the
Python log level, and absl and TensorFlow's Python loggers add INFO lines (the export's, for
one). `framework_messages_to(path)` sends all of them to a log file for the duration of a run.
The examples import this module as `console` (Python puts a script's own directory first on
`sys.path`), after setting `TF_CPP_MIN_LOG_LEVEL` and before importing TensorFlow.
"""

import contextlib
import logging
import os
import sys

from absl import logging as absl_logging


@contextlib.contextmanager
def framework_messages_to(path):
    """Sends file descriptor 2 to `path`, absl to warnings and TensorFlow's logger to errors.

    Everything is restored on the way out, the descriptor first, so a crash's traceback still
    reaches the console; then where the messages went is printed.

    Args:
        path: the log file, truncated (e.g. `<model_dir>/stderr.log`).
    """
    absl_logger = logging.getLogger("absl")
    tensorflow_logger = logging.getLogger("tensorflow")  # what `tf.get_logger()` returns
    levels = (
        absl_logging.get_verbosity(),
        absl_logger.level,
        tensorflow_logger.level,
        logging.root.level,
    )
    sys.stderr.flush()
    saved, log = os.dup(2), os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 2)
    absl_logging.set_verbosity(absl_logging.WARNING)
    tensorflow_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(log)
        os.close(saved)
        absl_logging.set_verbosity(levels[0])  # also moves the loggers' levels: set them after
        absl_logger.setLevel(levels[1])
        tensorflow_logger.setLevel(levels[2])
        logging.root.setLevel(levels[3])
        print(f"TensorFlow's own messages: {path}")
