"""Launch the gpte demo: ``python demos/app.py [options]`` is ``gpte demo [options]`` (the app is gpte.demo.app)."""

import sys

from gpte.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
