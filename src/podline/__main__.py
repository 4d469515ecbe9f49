"""``python -m podline``: the ``podline`` command line (``podline.cli``)."""

from podline.cli import main

if __name__ == "__main__":
    main()
