"""`python -m keras_taylor` is the `keras-taylor` command."""

import sys

from keras_taylor.cli import main

sys.exit(main())
