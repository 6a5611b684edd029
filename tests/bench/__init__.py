"""Benchmarks (`make bench`): each module measures one thing and prints a Markdown table."""
