"""Recomputes prismwatch's month-end forecast with SciPy from the inputs it reports
(`prismwatch spend --json`), and prints the reference figures as JSON.

Model (see src/spend/forecast.rs): completed days i.i.d.; remaining R days sum to R*mean with
variance R*s^2 + R^2*s^2/k; 95% interval from Student's t with k-1 degrees of freedom.
"""

import json
import math
import sys

from scipy import stats

report = json.load(sys.stdin)
inputs = report["inputs"]
days = inputs["completed_days"]
k = len(days)
spent = inputs["spent"]
remaining = max(inputs["remaining_days"], 0.0)
mean = sum(days) / k
estimate = spent + mean * remaining
if k < 2:
    # One completed day has no spread to estimate: an estimate without an interval.
    print(json.dumps({"daily_rate": mean, "estimate": estimate, "lower": None, "upper": None}))
    sys.exit(0)
s = stats.tstd(days)  # sample standard deviation (ddof=1)
t = stats.t.ppf(0.975, df=k - 1)
spread = t * s * math.sqrt(remaining + remaining * remaining / k)
print(json.dumps({"daily_rate": mean, "estimate": estimate, "lower": max(estimate - spread, spent), "upper": estimate + spread}))
