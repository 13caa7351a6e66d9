"""Reference values for promptgate's statistics beyond ../shared/stats, computed with SciPy.

Run: python3 tests/data/make_extra_reference.py > tests/data/stats_extra_reference.json
"""
import json

import scipy
from scipy import stats

out = {"about": f"computed with SciPy {scipy.__version__} by tests/data/make_extra_reference.py"}

# One-sided 95 % Clopper-Pearson lower bounds: the 0.05 quantile of Beta(x, n - x + 1),
# equal to the lower end of SciPy's two-sided exact 90 % interval.
cp = []
for x, n in [(1, 10), (45, 50), (99, 100), (7, 8), (30, 30)]:
    low = stats.binomtest(x, n).proportion_ci(confidence_level=0.90, method="exact").low
    cp.append({"x": x, "n": n, "lower_95_one_sided": low})
out["clopper_pearson_lower"] = cp

# One-sided 95 % Wilson lower bounds: the lower end of the two-sided 90 % Wilson interval.
wl = []
for x, n in [(1, 10), (45, 50), (99, 100), (7, 8), (30, 30)]:
    low = stats.binomtest(x, n).proportion_ci(confidence_level=0.90, method="wilson").low
    wl.append({"x": x, "n": n, "lower_95_one_sided": low})
out["wilson_lower"] = wl

print(json.dumps(out, indent=1))
