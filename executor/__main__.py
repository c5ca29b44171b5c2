"""``python -m executor``: the same command line as the ``executor`` script."""

from ._cli import main

if __name__ == "__main__":
    main()
