"""`python -m keras_siamese COMMAND [flags]`: the command line (see `keras_siamese.cli`)."""

from keras_siamese.cli import run

if __name__ == "__main__":
    run()
