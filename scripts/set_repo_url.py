"""Move the project to another repository URL: pyproject's project.urls, every Colab badge, the Colab cell's default.

    python scripts/set_repo_url.py https://github.com/OWNER/REPO

The URL is defined once (`project.urls.Repository` in pyproject.toml); the README's and the notebooks' Colab badges
(`colab.research.google.com/github/OWNER/REPO/...`) and the Colab cell's default `XROUTER_LITE_SOURCE`
(`git+https://github.com/OWNER/REPO`) are derived from it, and tests/test_notebooks_static.py fails when they
disagree. This rewrites all of them in one go (a fork, or the project's first public home).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GITHUB = re.compile(r"^https://github\.com/([\w.-]+/[\w.-]+?)/?$")


def set_repo_url(new_url: str, root: Path = REPO) -> list[Path]:
    """Rewrite the URL everywhere it is derived; the files changed."""
    m = GITHUB.match(new_url)
    if not m:
        raise ValueError(f"expected https://github.com/OWNER/REPO (Colab badges open GitHub paths), got {new_url!r}")
    old_url = tomllib.loads((root / "pyproject.toml").read_text())["project"]["urls"]["Repository"].rstrip("/")
    old_path, new_path = GITHUB.match(old_url).group(1), m.group(1)
    changed = []
    for path in [root / "pyproject.toml", root / "README.md", *sorted((root / "notebooks").glob("*.ipynb"))]:
        text = path.read_text()
        new = (text.replace(f"github.com/{old_path}", f"github.com/{new_path}")
               .replace(f"colab.research.google.com/github/{old_path}/", f"colab.research.google.com/github/{new_path}/"))
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("url", help="https://github.com/OWNER/REPO")
    p.add_argument("--root", type=Path, default=REPO, help="the checkout to rewrite (default: this one)")
    args = p.parse_args(argv)
    for path in set_repo_url(args.url, args.root):
        print(f"rewrote {path.relative_to(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
