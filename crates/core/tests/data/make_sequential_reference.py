"""Reference values for promptgate's always-valid boundary (stats::sequential), computed with
`confseq` (Howard & Waudby-Smith's implementation of Howard et al. 2021), independently of the
Rust code.

Install (it builds C++: needs Boost headers, CMake, Ninja, and for Python 3.11 a newer pybind11
than its build pins): pip install pybind11 scikit-build cmake ninja numpy scipy &&
pip install --no-build-isolation confseq==0.0.11
Run: python3 crates/core/tests/data/make_sequential_reference.py \
  > crates/core/tests/data/stats_sequential_reference.json
"""
import json
from importlib.metadata import version

from confseq.boundaries import normal_mixture_bound

cases = []
for alpha in (0.05, 0.01, 0.1):
    for v_opt in (1.0, 100.0, 450.0, 10_000.0):
        for v in (1.0, 10.0, 100.0, 450.0, 5_000.0, 1e6):
            u = float(normal_mixture_bound(v, alpha, v_opt, alpha, False))
            cases.append({"v": v, "alpha": alpha, "v_opt": v_opt, "bound": u})

print(json.dumps({
    "about": f"two-sided normal mixture bound, confseq {version('confseq')} "
             "normal_mixture_bound(v, alpha, v_opt, alpha_opt=alpha, is_one_sided=False)",
    "normal_mixture_two_sided": cases,
}, indent=1))
