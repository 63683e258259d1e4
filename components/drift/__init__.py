"""The drift check between spans: TFDV's drift comparators (thresholds in the schema) on the
statistics of a span's train split against those of the last accepted earlier span."""
