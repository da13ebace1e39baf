"""Run outputs: metrics store and plots."""
