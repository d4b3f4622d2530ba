"""What happened and what it achieved: events and device keys, pings (one validator for the API and for bulk
files), reach reports with k-suppression, heatmaps, erasure and retention."""
