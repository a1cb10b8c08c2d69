"""`python -m keras_siamese COMMAND [flags]`: the command line (see `keras_siamese.cli`).

`cli.run` sets `TF_CPP_MIN_LOG_LEVEL=2` (unless set) before any command imports TensorFlow,
holds the start-up lines TensorFlow's C++ code prints while it is imported to that level, and
quietens absl and TensorFlow's logger while the command runs (`--verbosity` to see more).
"""

from keras_siamese.cli import run

if __name__ == "__main__":
    run()
