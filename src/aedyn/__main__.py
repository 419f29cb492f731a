"""``python -m aedyn``: the ``aedyn`` command line, for where the console script is not on the PATH."""

from aedyn.cli import main

if __name__ == "__main__":
    main()
