"""Benchmarks that measure their own baseline in the same run and print ratios (`make bench`)."""
