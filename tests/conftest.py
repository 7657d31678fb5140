import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # tests draw figures without a display
# the book's own machinery (notebooks.py) sits beside book.py, outside the library
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
