"""Write a small labelled image folder (scikit-learn digits as PNGs, one folder per class).

    python scripts/make_sample.py samples/digits --per-class 30 --size 64
"""

import argparse

from featx.data.datasets import write_digits

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output folder")
    ap.add_argument("--per-class", type=int, default=30, help="images per class (default 30; all: 0)")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    a = ap.parse_args()
    path = write_digits(a.out, per_class=a.per_class or None, size=a.size)
    print(f"wrote a sample image folder to {path}")
