"""Speed benchmarks: functions returning measured figures (medians, ratios against a reference)."""
