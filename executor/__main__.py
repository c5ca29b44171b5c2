"""``python -m executor``: the same command line as the ``executor`` script."""

from .cli import main

if __name__ == "__main__":
    main()
