"""Small apps a user might build instead of geotarget, for benchmarks to measure against."""
