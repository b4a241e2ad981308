"""Speed benchmarks: functions returning medians, with a reference measured in the same run."""
